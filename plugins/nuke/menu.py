"""shotpass for Nuke, UI stage: the "shotpass" menu, the ShotPass node entry and the queue panel.

The menu and the node entry come first and need no Qt; the queue panel is added only when a Qt binding
loads. Any failure prints a traceback and leaves Nuke running.
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
except Exception:  # no Qt binding: install_menu already said so and left the panel out
    pass
