"""Remote-sensing and IoT asset digitisation: a farmer's field becomes a verified credit limit."""

__version__ = "0.1.0"
