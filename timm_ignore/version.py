__version__ = '0.1.0'
#: Where this project lives; model cards link to it (the authors' code is ``models.zoo.AUTHORS_CODE_URL``).
PROJECT_URL = 'https://github.com/timm-ignore/timm-ignore'
