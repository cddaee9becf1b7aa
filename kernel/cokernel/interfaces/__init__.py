"""Interfaces carry messages between the outside world and a :class:`cokernel.Kernel`."""
