"""The command table: names, groups and summaries, without importing any command.

Each entry names the module that implements it and the key of its Spec there, so
`moor ps` imports the ps module only.
"""

from __future__ import annotations

SYSTEM = "moorage.cli.cmd_system"
RUN = "moorage.cli.cmd_run"
CONTAINERS = "moorage.cli.cmd_containers"
PS = "moorage.cli.cmd_ps"
INTERACTIVE = "moorage.cli.interactive"
IMAGES = "moorage.cli.cmd_images"
CONTEXT = "moorage.cli.cmd_context"
OBJECTS = "moorage.cli.cmd_objects"
COMPLETION = "moorage.cli.completion"
STATS = "moorage.cli.cmd_stats"
CP = "moorage.cli.cmd_cp"
LOGIN = "moorage.cli.cmd_login"
BUILD = "moorage.cli.cmd_build"
VOLUMES = "moorage.cli.cmd_volumes"
MACHINE = "moorage.cli.cmd_machine"
DASHBOARD = "moorage.cli.cmd_dashboard"

# name → (module, spec key, summary); docker's wording for the summaries.
TOP: dict[str, tuple[str, str, str]] = {
    "run": (RUN, "run", "Create and run a new container from an image"),
    "exec": (INTERACTIVE, "exec", "Execute a command in a running container"),
    "ps": (PS, "ps", "List containers"),
    "images": (IMAGES, "images", "List images"),
    "pull": (IMAGES, "pull", "Download an image from a registry"),
    "push": (IMAGES, "push", "Upload an image to a registry"),
    "login": (LOGIN, "login", "Authenticate to a registry"),
    "logout": (LOGIN, "logout", "Log out from a registry"),
    "version": (SYSTEM, "version", "Show the moorage version information"),
    "info": (SYSTEM, "info", "Display system-wide information"),
    "attach": (INTERACTIVE, "attach",
               "Attach local standard input, output, and error streams to a running container"),
    "build": (BUILD, "build", "Build an image from a Dockerfile"),
    "commit": (CONTAINERS, "commit", "Create a new image from a container's changes"),
    "cp": (CP, "cp", "Copy files/folders between a container and the local filesystem"),
    "create": (RUN, "create", "Create a new container"),
    "diff": (CONTAINERS, "diff",
             "Inspect changes to files or directories on a container's filesystem"),
    "events": (SYSTEM, "events", "Get real time events from the server"),
    "export": (CONTAINERS, "export", "Export a container's filesystem as a tar archive"),
    "history": (IMAGES, "history", "Show the history of an image"),
    "import": (IMAGES, "import", "Import the contents from a tarball to create a filesystem image"),
    "inspect": (CONTAINERS, "inspect", "Return low-level information on Docker objects"),
    "kill": (CONTAINERS, "kill", "Kill one or more running containers"),
    "load": (IMAGES, "load", "Load an image from a tar archive or STDIN"),
    "logs": (CONTAINERS, "logs", "Fetch the logs of a container"),
    "pause": (CONTAINERS, "pause", "Pause all processes within one or more containers"),
    "port": (CONTAINERS, "port", "List port mappings or a specific mapping for the container"),
    "rename": (CONTAINERS, "rename", "Rename a container"),
    "restart": (CONTAINERS, "restart", "Restart one or more containers"),
    "rm": (CONTAINERS, "rm", "Remove one or more containers"),
    "rmi": (IMAGES, "rmi", "Remove one or more images"),
    "save": (IMAGES, "save", "Save one or more images to a tar archive (streamed to STDOUT by "
                             "default)"),
    "start": (CONTAINERS, "start", "Start one or more stopped containers"),
    "stats": (STATS, "stats",
              "Display a live stream of container(s) resource usage statistics"),
    "stop": (CONTAINERS, "stop", "Stop one or more running containers"),
    "tag": (IMAGES, "tag", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"),
    "top": (CONTAINERS, "top", "Display the running processes of a container"),
    "unpause": (CONTAINERS, "unpause", "Unpause all processes within one or more containers"),
    "update": (CONTAINERS, "update", "Update configuration of one or more containers"),
    "wait": (CONTAINERS, "wait",
             "Block until one or more containers stop, then print their exit codes"),
    "completion": (COMPLETION, "completion", "Generate the autocompletion script for a shell"),
    "dashboard": (DASHBOARD, "dashboard", "Serve a web interface for the engine"),
}

_CONTAINER_VERBS = ("attach", "commit", "cp", "create", "diff", "exec", "export", "kill", "logs",
                    "pause", "port", "rename", "restart", "rm", "run", "start", "stats", "stop",
                    "top", "unpause", "update", "wait")

GROUPS: dict[str, tuple[str, dict[str, tuple[str, str, str]]]] = {
    "container": ("Manage containers", {
        **{verb: TOP[verb] for verb in _CONTAINER_VERBS},
        "inspect": (CONTAINERS, "inspect", "Display detailed information on one or more "
                                           "containers"),
        "ls": (PS, "ps", "List containers"),
        "prune": (CONTAINERS, "prune", "Remove all stopped containers"),
    }),
    "builder": ("Manage builds", {
        "build": TOP["build"],
        "prune": (BUILD, "builder_prune", "Remove build cache"),
    }),
    "image": ("Manage images", {
        **{verb: TOP[verb] for verb in ("build", "history", "import", "load", "pull", "push",
                                        "save", "tag")},
        "inspect": (IMAGES, "inspect", "Display detailed information on one or more images"),
        "ls": (IMAGES, "images", "List images"),
        "prune": (IMAGES, "prune", "Remove unused images"),
        "rm": (IMAGES, "rmi", "Remove one or more images"),
    }),
    "system": ("Manage moorage", {
        "check": (SYSTEM, "check", "Verify the engine's store (digests, snapshots, references)"),
        "df": (SYSTEM, "df", "Show docker disk usage"),
        "dial-stdio": (SYSTEM, "dial_stdio", "Proxy the stdio stream to the daemon connection"),
        "events": TOP["events"],
        "info": TOP["info"],
        "prune": (SYSTEM, "prune", "Remove unused data"),
    }),
    "context": ("Manage contexts", {
        verb: (CONTEXT, verb, summary) for verb, summary in (
            ("create", "Create a context"), ("inspect", "Display detailed information on one "
                                                        "or more contexts"),
            ("ls", "List contexts"), ("rm", "Remove one or more contexts"),
            ("show", "Print the name of the current context"),
            ("use", "Set the current docker context"), ("update", "Update a context"),
            ("export", "Export a context to a tar archive FILE or a tar stream on STDOUT"),
            ("import", "Import a context from a tar file"))
    }),
    "machine": ("Create and manage engines in virtual machines", {
        verb.replace("_", "-"): (MACHINE, verb, summary) for verb, summary in (
            ("active", "Print which machine is active"),
            ("config", "Print the connection config for machine"),
            ("create", "Create a machine"),
            ("env", "Display the commands to set up the environment for the Docker client"),
            ("inspect", "Inspect information about a machine"),
            ("ip", "Get the IP address of a machine"), ("kill", "Kill a machine"),
            ("ls", "List machines"),
            ("regenerate_certs", "Regenerate TLS Certificates for a machine"),
            ("restart", "Restart a machine"), ("rm", "Remove a machine"),
            ("scp", "Copy files between machines"),
            ("ssh", "Log into or run a command on a machine with SSH."),
            ("start", "Start a machine"), ("status", "Get the status of a machine"),
            ("stop", "Stop a machine"), ("upgrade", "Upgrade a machine to the client's moorage"),
            ("url", "Get the URL of a machine"))
    }),
    "network": ("Manage networks", {
        verb: (OBJECTS, f"network_{verb}", summary) for verb, summary in (
            ("create", "Create a network"), ("inspect", "Display detailed information on one "
                                                        "or more networks"),
            ("ls", "List networks"), ("prune", "Remove all unused networks"),
            ("rm", "Remove one or more networks"),
            ("connect", "Connect a container to a network"),
            ("disconnect", "Disconnect a container from a network"))
    }),
    "volume": ("Manage volumes", {
        verb: (VOLUMES, f"volume_{verb}", summary) for verb, summary in (
            ("create", "Create a volume"), ("inspect", "Display detailed information on one "
                                                       "or more volumes"),
            ("ls", "List volumes"), ("prune", "Remove unused local volumes"),
            ("rm", "Remove one or more volumes"))
    }),
}

# `container list`, `image list`, … are docker's aliases of `ls`; `remove` of `rm`.
ALIASES = {"list": "ls", "remove": "rm"}
