from setuptools import find_packages, setup


def read_version():
    scope = {}
    with open('acnet_backbone/version.py') as f:
        exec(f.read(), scope)
    return scope['__version__']


setup(
    name='acnet_backbone',
    version=read_version(),
    description='ACNet (Asymmetric Convolution Block) ResNet backbones for '
    'MMDetection 3.x, with exact fusion into a stock ResNet and ONNX export',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    # the tested range: python 3.11 with torch 2.1.2 (numpy 1.26) and with
    # torch 2.14.1 (numpy 2.4), each with mmengine 0.10.7, mmcv 2.1.0, mmdet
    # 3.3.0, mmpretrain 1.2.0, mmsegmentation 1.2.2 (make test, make
    # test-torch21). torch < 2.3 needs numpy < 2, which cannot be said here:
    # `import acnet_backbone` says it.
    python_requires='>=3.11,<3.12',
    packages=find_packages(include=['acnet_backbone', 'acnet_backbone.*']),
    package_data={'acnet_backbone': ['data/*.txt']},
    # Ranges, not pins: an existing mmcv (a build with ops) satisfies them and
    # is never rebuilt. mmcv itself is built by tools/setup_env.sh where absent.
    install_requires=[
        'torch>=2.1',
        'mmengine>=0.10.7,<1.0',
        'mmcv>=2.1.0,<2.2.0',
        'mmdet>=3.3.0,<3.4',
        'numpy>=1.26',
        'matplotlib',
    ],
    extras_require={
        'dev': [
            'pytest', 'pytest-xdist', 'pytest-timeout',
            'hypothesis',
            'onnx', 'onnxruntime', 'onnxscript', 'torchvision', 'ruff',
            'mmsegmentation>=1.2.2,<2', 'ftfy', 'regex', 'mmpretrain>=1.2.0,<2',
            # mmdeploy's own requirements less its protobuf pin; mmdeploy
            # itself: pip install --no-deps mmdeploy==1.3.1 (docs)
            'aenum', 'multiprocess', 'prettytable', 'terminaltables', 'dill'
        ],
        # semantic segmentation (acnet_backbone.seg); mmseg.utils imports
        # ftfy and regex without requiring them
        'seg': ['mmsegmentation>=1.2.2,<2', 'ftfy', 'regex'],
        # classification pretraining (configs/pretrain, tools/journey.py)
        'pretrain': ['mmpretrain>=1.2.0,<2'],
        # end-to-end deployment: then pip install --no-deps mmdeploy==1.3.1
        # (its metadata pins protobuf<=3.20.2, which onnx cannot use)
        'deploy': ['onnx', 'onnxruntime', 'onnxscript', 'aenum',
                   'multiprocess', 'prettytable', 'terminaltables', 'dill'],
        # OpenVINO runs of the end-to-end files (tools/deploy.py --backend
        # openvino); tested with 2026.4
        'openvino': ['openvino>=2026.4,<2027'],
    },
    license='Apache-2.0',
    zip_safe=False,
)
