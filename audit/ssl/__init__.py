"""The SSL engine ``audit dynamics`` wraps (paper 3.2.4, Appendix A).

``algorithms/`` one file per algorithm and the ``ALGORITHMS`` registry; ``models.py`` the
classifiers (``MODELS``); ``augment/`` weak and strong batched augmentation; ``trainer.py`` the one
training loop (``TrainConfig``, ``Trainer``, observers); ``checkpoint.py`` exact resumption;
``cli.py`` the ``audit train`` command.
"""
