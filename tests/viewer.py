"""A real cutelog, in this process, headless: what the log tests look at.

cutelog is a Qt application: it runs offscreen with a temporary configuration
directory, listens on 127.0.0.1 on a free port, and the tests pump its event
loop while they wait, then read the records its tabs hold.
"""

import os
import socket
import sys
import time


class Viewer:
    def __init__(self, config_dir):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        os.environ["XDG_CONFIG_HOME"] = str(config_dir)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        argv, sys.argv = sys.argv, ["cutelog", "--listen_host", "127.0.0.1",
                                    "--listen_port", str(self.port)]
        try:
            import cutelog.resources  # noqa: F401  (registers the UI files)
            from cutelog.config import CONFIG, ROOT_LOG, parse_cmdline
            from cutelog.main_window import MainWindow
            from qtpy.QtWidgets import QApplication
            self.app = QApplication.instance() or QApplication(sys.argv)
            overrides, _ = parse_cmdline(ROOT_LOG)
            CONFIG.set_overrides(overrides)
            self.window = MainWindow(ROOT_LOG, self.app)
        finally:
            sys.argv = argv
        self.address = "127.0.0.1:%d" % self.port

    def pump(self, seconds=0.05):
        deadline = time.monotonic() + seconds
        while True:
            self.app.processEvents()
            if time.monotonic() >= deadline:
                return
            time.sleep(0.005)

    def wait_until(self, condition, timeout=30.0, what="condition"):
        deadline = time.monotonic() + timeout
        while True:
            self.pump()
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError("timed out after %.0fs waiting for %s" % (timeout, what))

    def records(self, prefix=""):
        found = []
        for tab in list(self.window.loggers_by_name.values()):
            found.extend(r for r in tab.record_model.records
                         if (r.name or "").startswith(prefix))
        return found

    def loggers(self):
        names = set()
        for tab in self.window.loggers_by_name.values():
            names.update(tab.namespace_tree_model.registry)
        return names

    def stop_listening(self):
        self.window.stop_server()
        self.pump(0.2)

    def start_listening(self):
        self.window.start_server()
        self.pump(0.1)

    def close(self):
        self.window.stop_server()
        self.pump(0.2)
