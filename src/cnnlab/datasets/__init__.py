"""Data sets shipped inside the package: MNIST's four idx files (11 MB), as scikit-learn ships its small ones.

They are package data, not code: `cnnlab.data.mnist_path()` finds them, `--data mnist` reads them anywhere, and the
repository's `data/mnist` is a symbolic link to `mnist/` here.
"""
