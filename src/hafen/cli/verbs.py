"""The ``hafen`` verbs: name -> (module, attribute, one-line help), imported on first use.

The order is the order of ``hafen --help``. ``hafen container`` reuses the entries of
the verbs it also offers (``exec``, ``stats``...).
"""

from __future__ import annotations

VERBS: dict[str, tuple[str, str, str]] = {
    "run": ("hafen.cli.commands.container", "run", "Create and run a new container from an image"),
    "create": ("hafen.cli.commands.container", "create", "Create a new container"),
    "start": ("hafen.cli.commands.container", "start", "Start one or more stopped containers"),
    "ps": ("hafen.cli.commands.container", "ps", "List containers"),
    "logs": ("hafen.cli.commands.container", "logs", "Fetch the logs of a container"),
    "stop": ("hafen.cli.commands.container", "stop", "Stop one or more running containers"),
    "restart": ("hafen.cli.commands.container", "restart", "Restart one or more containers"),
    "rename": ("hafen.cli.commands.container", "rename", "Rename a container"),
    "kill": ("hafen.cli.commands.container", "kill", "Kill one or more running containers"),
    "pause": (
        "hafen.cli.commands.resources",
        "pause",
        "Pause all processes within one or more containers",
    ),
    "unpause": (
        "hafen.cli.commands.resources",
        "unpause",
        "Unpause all processes within one or more containers",
    ),
    "update": (
        "hafen.cli.commands.resources",
        "update",
        "Update configuration of one or more containers",
    ),
    "top": ("hafen.cli.commands.resources", "top", "Display the running processes of a container"),
    "stats": (
        "hafen.cli.commands.resources",
        "stats",
        "Display a live stream of container(s) resource usage statistics",
    ),
    "rm": ("hafen.cli.commands.container", "rm", "Remove one or more containers"),
    "wait": (
        "hafen.cli.commands.container",
        "wait",
        "Block until one or more containers stop, then print their exit codes",
    ),
    "attach": (
        "hafen.cli.commands.attach",
        "attach",
        "Attach local standard input, output, and error streams to a running container",
    ),
    "port": (
        "hafen.cli.commands.attach",
        "port",
        "List port mappings or a specific mapping for the container",
    ),
    "cp": (
        "hafen.cli.commands.cp",
        "cp",
        "Copy files/folders between a container and the local filesystem",
    ),
    "events": ("hafen.cli.commands.events", "events", "Get real time events from the server"),
    "exec": ("hafen.cli.commands.exec", "exec_", "Execute a command in a running container"),
    "build": ("hafen.cli.commands.build", "build", "Build an image from a Dockerfile"),
    "images": ("hafen.cli.commands.image", "images", "List images"),
    "rmi": ("hafen.cli.commands.image", "rmi", "Remove one or more images"),
    "tag": (
        "hafen.cli.commands.image",
        "tag",
        "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
    ),
    "commit": (
        "hafen.cli.commands.image",
        "commit",
        "Create a new image from a container's changes",
    ),
    "diff": (
        "hafen.cli.commands.image",
        "diff",
        "Inspect changes to files or directories on a container's filesystem",
    ),
    "import": (
        "hafen.cli.commands.image",
        "import_",
        "Import the contents from a tarball to create a filesystem image",
    ),
    "export": (
        "hafen.cli.commands.image",
        "export",
        "Export a container's filesystem as a tar archive",
    ),
    "history": ("hafen.cli.commands.image", "history", "Show the history of an image"),
    "save": ("hafen.cli.commands.image", "save", "Save one or more images to a tar archive"),
    "load": ("hafen.cli.commands.image", "load", "Load an image from a tar archive or STDIN"),
    "pull": ("hafen.cli.commands.registry", "pull", "Download an image from a registry"),
    "push": ("hafen.cli.commands.registry", "push", "Upload an image to a registry"),
    "login": ("hafen.cli.commands.registry", "login", "Log in to a registry"),
    "logout": ("hafen.cli.commands.registry", "logout", "Log out from a registry"),
    "inspect": ("hafen.cli.commands.system", "inspect", "Return low-level information on objects"),
    "version": ("hafen.cli.commands.system", "version", "Show the hafen version information"),
    "info": ("hafen.cli.commands.system", "info", "Display system-wide information"),
    "container": ("hafen.cli.commands.container", "container_group", "Manage containers"),
    "image": ("hafen.cli.commands.image", "image_group", "Manage images"),
    "volume": ("hafen.cli.commands.volume", "volume_group", "Manage volumes"),
    "builder": ("hafen.cli.commands.build", "builder_group", "Manage builds"),
    "system": ("hafen.cli.commands.disk", "system_group", "Manage hafen"),
    "network": ("hafen.cli.commands.network", "network_group", "Manage networks"),
}
