"""gunicorn's configuration for the gateway: `gunicorn -c gunicorn.conf.py` (gunicorn also reads
this file by itself when started from this directory). Command-line options override it.

The settings are the package's own (periskop_pushgateway/gunicorn_settings.py), the same as
`periskop-pushgateway serve` uses.
"""

import os
import sys
import tempfile

# prometheus_client picks in-memory or shared-directory metrics when it is first imported, which
# importing the gateway does: the directory the workers share must be set before that.
if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(
        prefix="periskop-pushgateway-metrics-"
    )
# gunicorn runs this file again on SIGHUP: the live workers' metrics must then be kept.
_first_load = "periskop_pushgateway" not in sys.modules

from periskop_pushgateway.metrics import prepare_multiprocess_dir  # noqa: E402
from periskop_pushgateway.server.gunicorn_settings import gunicorn_settings  # noqa: E402

if _first_load:
    prepare_multiprocess_dir()  # empties a configured directory of a previous run's samples

globals().update(gunicorn_settings())
wsgi_app = "periskop_pushgateway:create_app()"
