"""Errors caused by the user's input: the CLI prints them as one line and exits with code 2."""


class UserError(ValueError):
    """Bad input (a path, an image, an argument, a model folder). The message is for the user."""
