"""The kernel layer: :class:`~cokernel.kernel._kernel.Kernel` (routing, serving, lifecycle),
the handler table (``_handlers``) and the start-up prelude (``_prelude``).

Kept free of imports so that ``cokernel start`` can load the prelude before IPython.
"""
