"""Add-on preferences: where the server is and where results are cached."""

from __future__ import annotations

import os

import bpy

from ..core import is_local_address

# bl_idname of the preferences must be the extension's package ("bl_ext.<repo>.shotpass" when installed).
ADDON_PACKAGE = __package__.rsplit(".", 1)[0]


class ShotpassPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_PACKAGE

    server_address: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Server", description="host:port of the shotpass server",
        default=os.environ.get("SHOTPASS_SERVER", "localhost:50051"),
    )
    token: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Token", description="Access token of a shared server (empty: $SHOTPASS_TOKEN, else none)",
        subtype="PASSWORD",
    )
    # TLS: a CA turns it on; a client certificate and key answer servers that demand mutual TLS.
    tls_ca: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="TLS CA", subtype="FILE_PATH",
        description="CA certificate (PEM) that signed the server's certificate: connect with TLS "
                    "(empty: $SHOTPASS_TLS_CA, else no TLS)",
    )
    tls_cert: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Client Certificate", subtype="FILE_PATH",
        description="This machine's certificate (PEM) for mutual TLS (empty: $SHOTPASS_TLS_CERT)",
    )
    tls_key: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Client Key", subtype="FILE_PATH",
        description="The client certificate's private key (PEM) (empty: $SHOTPASS_TLS_KEY)",
    )
    cache_dir: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Cache Folder", subtype="DIR_PATH",
        description="Where plates are rendered and results fetched (empty: a 'shotpass' folder beside the "
                    ".blend file, or the temporary folder for an unsaved file)",
    )
    path_map: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Path Map", description="LOCAL=SERVER prefixes separated by ';' (like a render farm's path map)",
    )

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "server_address")
        if not is_local_address(self.server_address) and not bpy.app.online_access:
            layout.label(text="Online access is off: only a server on this machine can be reached", icon="ERROR")
        layout.prop(self, "token")
        tls = layout.column(heading="TLS")
        for name in ("tls_ca", "tls_cert", "tls_key"):
            tls.prop(self, name)
        layout.prop(self, "cache_dir")
        layout.prop(self, "path_map")


def get() -> ShotpassPreferences:
    return bpy.context.preferences.addons[ADDON_PACKAGE].preferences


def cache_root() -> str:
    prefs = get()
    if prefs.cache_dir:
        return bpy.path.abspath(prefs.cache_dir)
    if bpy.data.filepath:
        return os.path.join(os.path.dirname(bpy.data.filepath), "shotpass")
    return os.path.join(bpy.app.tempdir or os.environ.get("TMPDIR", "/tmp"), "shotpass")
