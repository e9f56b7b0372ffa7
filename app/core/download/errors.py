"""Download errors: each message is plain words with the action the user can take."""

from __future__ import annotations


class DownloadError(Exception):
    """A download failed; ``str(error)`` is meant for the user."""


class OfflineError(DownloadError):
    """Offline mode is on, so nothing may connect."""

    def __init__(self, what: str = "download") -> None:
        super().__init__(
            f"Cannot {what}: offline mode is on. Turn off offline mode (or unset HF_HUB_OFFLINE) "
            "and try again."
        )


class AuthRequiredError(DownloadError):
    """The repository is gated or private: a Hugging Face token is needed (HTTP 401/403)."""

    def __init__(self, repo_id: str, status: int, had_token: bool) -> None:
        self.repo_id = repo_id
        self.status = status
        self.had_token = had_token
        if had_token:
            text = (
                f"Your Hugging Face token cannot access {repo_id}. Open "
                f"https://huggingface.co/{repo_id} and accept the license with the account that owns "
                "the token, or enter a different token."
            )
        else:
            text = (
                f"{repo_id} is gated or private: enter a Hugging Face access token "
                "(https://huggingface.co/settings/tokens) and accept the model's license on its page."
            )
        super().__init__(text)


class NotFoundError(DownloadError):
    """The repository, revision or file does not exist (HTTP 404)."""

    def __init__(self, repo_id: str, filename: str | None, revision: str) -> None:
        self.repo_id = repo_id
        self.filename = filename
        what = f"{filename} in {repo_id}" if filename else repo_id
        super().__init__(
            f"{what} (revision {revision}) was not found on Hugging Face. Refresh the model "
            "catalog, or check the repository and file name."
        )


class NetworkError(DownloadError):
    """The server kept failing (drops, stalls, 5xx) after every retry."""


class DiskSpaceError(DownloadError):
    """Not enough free disk space for the download."""

    def __init__(self, folder: str, needed: int, free: int) -> None:
        self.needed = needed
        self.free = free
        super().__init__(
            f"Not enough free disk space in {folder}: the download needs {_gib(needed)} more, "
            f"only {_gib(free)} is free. Free up {_gib(needed - free)} or choose another storage "
            "folder in the settings."
        )


class UnsafeNameError(DownloadError):
    """A repository or file name from the Hub that would land outside the models folder."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"Refused the file name {name!r} from the Hub: it points outside the models folder."
        )


class ChecksumError(DownloadError):
    """The downloaded bytes do not match the Hub's sha256; the file has been deleted."""

    def __init__(self, filename: str, expected: str, actual: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"{filename} was damaged in transit (its checksum does not match the one published on "
            "Hugging Face), so it was deleted. Download it again."
        )


class DownloadCancelled(DownloadError):  # noqa: N818 - control flow, not a failure
    """The caller cancelled; the partial file was deleted."""

    def __init__(self) -> None:
        super().__init__("Download cancelled.")


class DownloadPaused(DownloadError):  # noqa: N818 - control flow, not a failure
    """The caller paused; the partial file stays on disk and the next download resumes it."""

    def __init__(self, done: int, total: int) -> None:
        self.done = done
        self.total = total
        super().__init__(f"Download paused at {done} of {total} bytes.")


def _gib(n: int) -> str:
    if n >= 1 << 30:
        return f"{n / (1 << 30):.1f} GiB"
    return f"{n / (1 << 20):.0f} MiB"
