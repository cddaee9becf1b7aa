"""The shell layer: IPython's shell as the kernel runs it, and everything a cell touches.

Cells and their interrupts (``_cells``), the shell (``_shell``), output streams, displays, comms,
stdin, history, IPython-compatibility, magics, profiles, pdb support and fd capture. Imports
the engine, gui, protocol layers and options; never the debugger or the kernel.
"""
