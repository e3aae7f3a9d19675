"""App state as ``param`` classes (no Panel import): usable from tests, notebooks and the served app."""

from app.state.folder import FOLDER_CHOICES, FolderState
from app.state.gallery import GalleryState, patch_info
from app.state.job import JobState, RunRequest
from app.state.options import RunOptions
from app.state.roi import RoiState, parse_roi_text
from app.state.search import SearchState
from app.state.session import AppState, SessionRegistry

__all__ = [
    "FOLDER_CHOICES",
    "AppState",
    "FolderState",
    "GalleryState",
    "JobState",
    "RoiState",
    "RunOptions",
    "RunRequest",
    "SearchState",
    "SessionRegistry",
    "parse_roi_text",
    "patch_info",
]
