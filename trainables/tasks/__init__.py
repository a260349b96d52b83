"""Tasks: importing this package registers every task (explicit imports, no scanning)."""
from trainables.tasks import nasbench360  # noqa: F401
from trainables.tasks import pdebench  # noqa: F401
from trainables.tasks import spherical  # noqa: F401
from trainables.tasks import toy  # noqa: F401
from trainables.tasks import ucr  # noqa: F401
