__version__ = '0.1.0'
from typing import Optional

#: Where this project lives, for model cards to link to; None while it has no public address (cards then say so
#: rather than link anywhere). The authors' code is ``models.zoo.AUTHORS_CODE_URL``.
PROJECT_URL: Optional[str] = None
