"""`cnnlab models`' rows, written by `python -m cnnlab.cli.models_cmd` (do not edit by hand)."""

SOURCE_HASH = "1fd9220f6003cabf"

MODELS = [
    {
        "name": "alexnet",
        "params": 61100840,
        "macs": 714188480,
        "default_input": [3, 224, 224],
        "default_classes": 1000,
        "paper": "Krizhevsky 2014, One weird trick for parallelizing CNNs (torchvision's AlexNet)",
    },
    {
        "name": "alexnet_paper",
        "params": 60965224,
        "macs": 724406816,
        "default_input": [3, 224, 224],
        "default_classes": 1000,
        "paper": "Krizhevsky, Sutskever & Hinton 2012, ImageNet Classification with Deep Convolutional Neural Networks",
    },
    {
        "name": "cnn3d_small",
        "params": 69906,
        "macs": 66382976,
        "default_input": [1, 28, 28, 28],
        "default_classes": 2,
        "paper": "A small Conv3d-BN-ReLU-MaxPool3d net (cnnlab) for 28x28x28 volumes on a CPU",
    },
    {
        "name": "face_embedder",
        "params": 12241728,
        "macs": 485896192,
        "default_input": [3, 112, 112],
        "default_classes": 0,
        "paper": (
            "Schroff, Kalenichenko & Philbin 2015 (FaceNet: embeddings, triplet loss); Deng et al. 2019 (ArcFace:"
            " BN-dropout-FC-BN head, additive angular margin)"
        ),
    },
    {
        "name": "lenet5",
        "params": 60000,
        "macs": 415680,
        "default_input": [1, 32, 32],
        "default_classes": 10,
        "paper": "LeCun, Bottou, Bengio & Haffner 1998, Gradient-Based Learning Applied to Document Recognition",
    },
    {
        "name": "lenet5_modern",
        "params": 61706,
        "macs": 416520,
        "default_input": [1, 28, 28],
        "default_classes": 10,
        "paper": "LeCun, Bottou, Bengio & Haffner 1998, Gradient-Based Learning Applied to Document Recognition",
    },
    {
        "name": "resnet10_3d",
        "params": 14336322,
        "macs": 8346129408,
        "default_input": [1, 28, 28, 28],
        "default_classes": 2,
        "paper": (
            "He et al. 2015, Deep Residual Learning for Image Recognition, with Conv3d as in MedMNIST v2 (Yang et"
            " al. 2023) and Hara et al. 2018 (3D ResNets)"
        ),
    },
    {
        "name": "resnet18",
        "params": 11689512,
        "macs": 1814073344,
        "default_input": [3, 224, 224],
        "default_classes": 1000,
        "paper": "He et al. 2015, Deep Residual Learning for Image Recognition (arXiv:1512.03385)",
    },
    {
        "name": "resnet18_3d",
        "params": 33140802,
        "macs": 17749103616,
        "default_input": [1, 28, 28, 28],
        "default_classes": 2,
        "paper": (
            "He et al. 2015, Deep Residual Learning for Image Recognition, with Conv3d as in MedMNIST v2 (Yang et"
            " al. 2023) and Hara et al. 2018 (3D ResNets)"
        ),
    },
    {
        "name": "resnet20",
        "params": 269722,
        "macs": 40551040,
        "default_input": [3, 32, 32],
        "default_classes": 10,
        "paper": "He et al. 2015, Deep Residual Learning for Image Recognition, section 4.2 (arXiv:1512.03385)",
    },
    {
        "name": "resnet32",
        "params": 464154,
        "macs": 68862592,
        "default_input": [3, 32, 32],
        "default_classes": 10,
        "paper": "He et al. 2015, Deep Residual Learning for Image Recognition, section 4.2 (arXiv:1512.03385)",
    },
    {
        "name": "resnet34",
        "params": 21797672,
        "macs": 3663761408,
        "default_input": [3, 224, 224],
        "default_classes": 1000,
        "paper": "He et al. 2015, Deep Residual Learning for Image Recognition (arXiv:1512.03385)",
    },
    {
        "name": "resnet34_3d",
        "params": 63450434,
        "macs": 33221366784,
        "default_input": [1, 28, 28, 28],
        "default_classes": 2,
        "paper": (
            "He et al. 2015, Deep Residual Learning for Image Recognition, with Conv3d as in MedMNIST v2 (Yang et"
            " al. 2023) and Hara et al. 2018 (3D ResNets)"
        ),
    },
    {
        "name": "resnet44",
        "params": 658586,
        "macs": 97174144,
        "default_input": [3, 32, 32],
        "default_classes": 10,
        "paper": "He et al. 2015, Deep Residual Learning for Image Recognition, section 4.2 (arXiv:1512.03385)",
    },
    {
        "name": "resnet50",
        "params": 25557032,
        "macs": 4089184256,
        "default_input": [3, 224, 224],
        "default_classes": 1000,
        "paper": "He et al. 2015, Deep Residual Learning for Image Recognition (arXiv:1512.03385)",
    },
    {
        "name": "resnet56",
        "params": 853018,
        "macs": 125485696,
        "default_input": [3, 32, 32],
        "default_classes": 10,
        "paper": "He et al. 2015, Deep Residual Learning for Image Recognition, section 4.2 (arXiv:1512.03385)",
    },
    {
        "name": "resnet101",
        "params": 44549160,
        "macs": 7801405440,
        "default_input": [3, 224, 224],
        "default_classes": 1000,
        "paper": "He et al. 2015, Deep Residual Learning for Image Recognition (arXiv:1512.03385)",
    },
    {
        "name": "resnet110",
        "params": 1727962,
        "macs": 252887680,
        "default_input": [3, 32, 32],
        "default_classes": 10,
        "paper": "He et al. 2015, Deep Residual Learning for Image Recognition, section 4.2 (arXiv:1512.03385)",
    },
    {
        "name": "resnet152",
        "params": 60192808,
        "macs": 11513626624,
        "default_input": [3, 224, 224],
        "default_classes": 1000,
        "paper": "He et al. 2015, Deep Residual Learning for Image Recognition (arXiv:1512.03385)",
    },
    {
        "name": "vgg11",
        "params": 132863336,
        "macs": 7609090048,
        "default_input": [3, 224, 224],
        "default_classes": 1000,
        "paper": "Simonyan & Zisserman 2014, Very Deep Convolutional Networks for Large-Scale Image Recognition",
    },
    {
        "name": "vgg11_bn",
        "params": 132868840,
        "macs": 7609090048,
        "default_input": [3, 224, 224],
        "default_classes": 1000,
        "paper": "Simonyan & Zisserman 2014, Very Deep Convolutional Networks for Large-Scale Image Recognition",
    },
    {
        "name": "vgg13",
        "params": 133047848,
        "macs": 11308466176,
        "default_input": [3, 224, 224],
        "default_classes": 1000,
        "paper": "Simonyan & Zisserman 2014, Very Deep Convolutional Networks for Large-Scale Image Recognition",
    },
    {
        "name": "vgg13_bn",
        "params": 133053736,
        "macs": 11308466176,
        "default_input": [3, 224, 224],
        "default_classes": 1000,
        "paper": "Simonyan & Zisserman 2014, Very Deep Convolutional Networks for Large-Scale Image Recognition",
    },
    {
        "name": "vgg16",
        "params": 138357544,
        "macs": 15470264320,
        "default_input": [3, 224, 224],
        "default_classes": 1000,
        "paper": "Simonyan & Zisserman 2014, Very Deep Convolutional Networks for Large-Scale Image Recognition",
    },
    {
        "name": "vgg16_bn",
        "params": 138365992,
        "macs": 15470264320,
        "default_input": [3, 224, 224],
        "default_classes": 1000,
        "paper": "Simonyan & Zisserman 2014, Very Deep Convolutional Networks for Large-Scale Image Recognition",
    },
    {
        "name": "vgg19",
        "params": 143667240,
        "macs": 19632062464,
        "default_input": [3, 224, 224],
        "default_classes": 1000,
        "paper": "Simonyan & Zisserman 2014, Very Deep Convolutional Networks for Large-Scale Image Recognition",
    },
    {
        "name": "vgg19_bn",
        "params": 143678248,
        "macs": 19632062464,
        "default_input": [3, 224, 224],
        "default_classes": 1000,
        "paper": "Simonyan & Zisserman 2014, Very Deep Convolutional Networks for Large-Scale Image Recognition",
    },
    {
        "name": "yolo_grid",
        "params": 12979133,
        "macs": 3881292800,
        "default_input": [3, 320, 320],
        "default_classes": 20,
        "paper": (
            "Redmon & Farhadi 2017 (YOLO9000: anchors by k-means, batch norm); Zheng et al. 2020 (CIoU loss); "
            "YOLOv5's cell-neighbour assignment"
        ),
    },
    {
        "name": "yolo_v1",
        "params": 21303806,
        "macs": 7579335680,
        "default_input": [3, 448, 448],
        "default_classes": 20,
        "paper": "Redmon et al. 2016, You Only Look Once: Unified, Real-Time Object Detection (CVPR)",
    },
]
