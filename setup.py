"""Build script of the detrack_ros ament_python package."""

from glob import glob
import os

from setuptools import find_packages, setup

PACKAGE = 'detrack_ros'
SHARE = os.path.join('share', PACKAGE)


def shared(directory: str, pattern: str) -> tuple:
    """Install the files matching ``directory/pattern`` under ``share/detrack_ros``."""
    return os.path.join(SHARE, directory), sorted(glob(os.path.join(directory, pattern)))


setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(include=['detrack_model', 'detrack_model.*',
                                    'detrack_ros', 'detrack_ros.*']),
    # The CUDA sources travel with the package: the kernel is built on first use on a GPU.
    package_data={'detrack_model.ops': ['csrc/deform_attn_cuda.cu', 'csrc/deform_attn_cuda.h',
                                        'csrc/deform_attn_kernels.cuh',
                                        'csrc/deform_attn_binding.cpp']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        (SHARE, ['package.xml']),
        shared('launch', '*.launch.py'),
        shared('config', '*.yaml'),
        shared('config', '*.xml'),
        shared('training', '*.yaml'),
        shared('models', '*'),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='detrack_ros maintainers',
    maintainer_email='maintainers@detrack-ros.org',
    description='DETRack single-object tracker, pruned for robots, as a ROS 2 node.',
    license='Apache-2.0',
    python_requires='>=3.10',
    extras_require={'test': ['pytest']},
    entry_points={'console_scripts': [
        'detrack-bag = detrack_ros.bag_tool:main',
        'detrack-eval = detrack_model.cli.evaluate:main',
        'detrack-export = detrack_model.cli.export:main',
        'detrack-pretrain = detrack_model.cli.pretrain:main',
        'detrack-profile = detrack_model.cli.profiler:main',
        'detrack-prune = detrack_model.cli.prune:main',
        'detrack-synth = detrack_model.cli.synth:main',
        'detrack-train = detrack_model.cli.train:main',
        'select_target = detrack_ros.select_target:main',
        'tracker_node = detrack_ros.tracker_node_entry:main',
    ]},
)
