"""Keystone's public WSGI application for gunicorn.

Keystone reads its command line with oslo.config when it starts; under
gunicorn that would be gunicorn's own options, which Keystone rejects. This
module hides them before Keystone starts (the configuration file comes from
OS_KEYSTONE_CONFIG_FILES).
"""

import sys

sys.argv = sys.argv[:1]

from keystone.server.wsgi import initialize_public_application  # noqa: E402

application = initialize_public_application()
