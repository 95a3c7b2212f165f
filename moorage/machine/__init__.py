"""`moor machine`: engines in local QEMU VMs, as docker-machine made them (client side only)."""
