"""QPU backends behind one port (`consumers.backends.base.Backend`).

Four are built in (`BACKENDS`: emulator, qpu-api, synthetic, qrmi: any QRMI resource); the owner
builds the one its settings name, or a site's from the ``qsched.backends`` entry points
(`consumers.owner.backend_choice`).
"""

BACKENDS = ("emulator", "qpu-api", "synthetic", "qrmi")
