"""The dataset catalogue. Importing this package never imports torch.

A dataset's loader returns uint8 images (N, C, H, W) and integer labels per split;
``dltool.data.prepare`` draws the validation split, resizes and computes normalisation.
"""

from __future__ import annotations

from typing import ClassVar

from dltool._registry import Registry
from dltool.params import Params


class DatasetParams(Params):
    """A named dataset; `info` is shown by `dltool list datasets`."""

    info: ClassVar[str] = ""
    # The loader fits its images to data.image_size/channels itself (it is called with them):
    # its masks must be resized with them, by nearest neighbour.
    sized: ClassVar[bool] = False
    # The loader is called with the whole data config (it fits images and points to it), not the root.
    configured: ClassVar[bool] = False


datasets: Registry[DatasetParams] = Registry("datasets", DatasetParams)


# One entry per dataset, each of the same shape (name, loader, a docstring and credits): a table
# in code, so the entries look alike on purpose.
@datasets.register("digits", "dltool.data.digits:load_digits")
class DigitsParams(DatasetParams):
    """scikit-learn's 1,797 handwritten digits, 8×8 grey, 10 classes; embedded, no download."""

    info: ClassVar[str] = "UCI ML hand-written digits (CC BY 4.0), shipped inside scikit-learn"


# Downloaded with `dltool download NAME`; where from and their checksums: dltool.data.sources.
@datasets.register("mnist", "dltool.data.idx:load_mnist")
class MnistParams(DatasetParams):
    """MNIST handwritten digits, 28×28 grey, 10 classes; 60,000 train + 10,000 test (download)."""

    info: ClassVar[str] = (
        "Yann LeCun, Corinna Cortes and Christopher J.C. Burges, http://yann.lecun.com/exdb/mnist/ (CC BY-SA 3.0)"
    )


@datasets.register("fashion-mnist", "dltool.data.idx:load_fashion_mnist")
class FashionMnistParams(DatasetParams):
    """Zalando's Fashion-MNIST articles, 28×28 grey, 10 classes; 60,000 train + 10,000 test (download)."""

    info: ClassVar[str] = (
        "Han Xiao, Kashif Rasul and Roland Vollgraf, Zalando Research, 2017, "
        "https://github.com/zalandoresearch/fashion-mnist (MIT)"
    )


@datasets.register("kmnist", "dltool.data.idx:load_kmnist")
class KmnistParams(DatasetParams):
    """Kuzushiji-MNIST cursive hiragana, 28×28 grey, 10 classes; 60,000 train + 10,000 test (download)."""

    info: ClassVar[str] = (
        "KMNIST Dataset (created by CODH), adapted from Kuzushiji Dataset (created by NIJL and others), "
        "doi:10.20676/00000341; Clanuwat et al., 2018 (CC BY-SA 4.0)"
    )


@datasets.register("cifar10", "dltool.data.cifar:load_cifar10")
class Cifar10Params(DatasetParams):
    """CIFAR-10 photos, 32×32 colour, 10 classes; 50,000 train + 10,000 test (download, binary version)."""

    info: ClassVar[str] = (
        "Alex Krizhevsky, Learning Multiple Layers of Features from Tiny Images, 2009, "
        "https://www.cs.toronto.edu/~kriz/cifar.html (cite the report when you use it)"
    )


@datasets.register("cifar100", "dltool.data.cifar:load_cifar100")
class Cifar100Params(DatasetParams):
    """CIFAR-100 photos, 32×32 colour, 100 fine classes; 50,000 train + 10,000 test (download, binary version)."""

    info: ClassVar[str] = (
        "Alex Krizhevsky, Learning Multiple Layers of Features from Tiny Images, 2009, "
        "https://www.cs.toronto.edu/~kriz/cifar.html (cite the report when you use it)"
    )


@datasets.register("svhn", "dltool.data.svhn:load_svhn")
class SvhnParams(DatasetParams):
    """Street View House Numbers, cropped digits, 32×32 colour, 10 classes; 73,257 train + 26,032 test (download)."""

    info: ClassVar[str] = (
        "Yuval Netzer, Tao Wang, Adam Coates, Alessandro Bissacco, Bo Wu and Andrew Y. Ng, NIPS workshop 2011, "
        "http://ufldl.stanford.edu/housenumbers/ (non-commercial use only)"
    )


@datasets.register("oxford-pets", "dltool.data.pets:load_pets")
class OxfordPetsParams(DatasetParams):
    """Oxford-IIIT Pet trimaps: photos of 37 cat and dog breeds, masks of pet/background/border; 3,680 train + 3,669 test (download)."""

    info: ClassVar[str] = (
        "Omkar M Parkhi, Andrea Vedaldi, Andrew Zisserman and C. V. Jawahar, Cats and Dogs, CVPR 2012, "
        "https://www.robots.ox.ac.uk/~vgg/data/pets/ (CC BY-SA 4.0)"
    )
    sized: ClassVar[bool] = True


@datasets.register("shapes-seg", "dltool.data.shapes:load_shapes_seg")
class ShapesSegParams(DatasetParams):
    """Generated circles, squares and triangles on textured backgrounds, with masks; 48×48, 600 train + 100 val + 100 test (made offline)."""

    info: ClassVar[str] = "made by dltool itself (dltool.data.shapes), deterministic; no licence terms"
    sized: ClassVar[bool] = True


@datasets.register("shapes-keypoints", "dltool.data.shape_points:load_shapes_keypoints")
class ShapesKeypointsParams(DatasetParams):
    """Faces drawn with shapes-seg's shapes (circle eyes, triangle nose, square mouth) and their centre and corner points (9); 48×48, 2,000 train + 200 val + 200 test (made offline)."""

    info: ClassVar[str] = "made by dltool itself (dltool.data.shape_points), deterministic; no licence terms"
    configured: ClassVar[bool] = True
