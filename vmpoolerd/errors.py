"""The one error a request handler raises: rendered as ``{"ok": false, "error": ...}``."""


class ApiError(Exception):
    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
