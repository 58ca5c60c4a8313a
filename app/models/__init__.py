"""ORM models. Importing this package registers every table on `Base.metadata`."""

from app.models.audit import AuditEvent
from app.models.catalog import Checkpoint, Image
from app.models.jobs import Job, JobStatus, JobTask
from app.models.maps import SaliencyMap
from app.models.ratings import PREFERENCES, Rating, RatingRevision
from app.models.studies import Arm, BnRoute, Study, StudyImage, StudyRater, StudyStatus, Trial
from app.models.users import ROLES, AuthSession, Invite, Role, User

__all__ = [
    "PREFERENCES",
    "ROLES",
    "Arm",
    "AuditEvent",
    "AuthSession",
    "BnRoute",
    "Checkpoint",
    "Image",
    "Invite",
    "Job",
    "JobStatus",
    "JobTask",
    "Rating",
    "RatingRevision",
    "Role",
    "SaliencyMap",
    "Study",
    "StudyImage",
    "StudyRater",
    "StudyStatus",
    "Trial",
    "User",
]
