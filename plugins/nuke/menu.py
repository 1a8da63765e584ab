"""shotpass for Nuke, UI stage: the "shotpass" menu, the ShotPass node entry and the queue panel.

Any failure (server package missing, Qt binding missing) prints a traceback and leaves Nuke running.
"""


def _shotpass_menu():
    import traceback

    try:
        import shotpass_nuke.host

        shotpass_nuke.host.install_menu()
    except Exception:
        print("shotpass: menu setup failed")
        traceback.print_exc()


_shotpass_menu()
del _shotpass_menu

try:  # registerWidgetAsPanel evaluates "shotpass_nuke.panel.QueuePanel" in this (__main__) namespace
    import shotpass_nuke.panel  # noqa: F401
except Exception:
    import traceback

    traceback.print_exc()
