"""The paper's figures, drawn with matplotlib (the ``figures`` extra); import the submodules where needed."""
