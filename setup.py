"""mae_transfer: MAE pretraining for Vision Transformers and transfer to detection, segmentation, pose and
classification on the OpenMMLab stack.

torch and mmcv are deliberately not in install_requires: torch must be the build that matches the user's
CUDA, and mmcv 2.1.0 must be compiled against that torch (see tools/setup_env.py and the README).

The top-level configs/ folder is the only copy of the configs in the repository; a built wheel carries it as
package data in mae_transfer/configs/ (`BuildPyWithConfigs`), where `mae_transfer.utils.configs.CONFIG_ROOT`
finds it. An editable install reads configs/ beside the package instead.
"""
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
CONFIG_SUFFIXES = ('.py', '.md')


class BuildPyWithConfigs(build_py):
    """build_py that also copies configs/ (configs and their README, `_base_` included) into the built package."""

    def run(self) -> None:
        super().run()
        if getattr(self, 'editable_mode', False):
            return  # the package stays in the checkout, next to configs/
        source = HERE / 'configs'
        target = Path(self.build_lib) / 'mae_transfer' / 'configs'
        for path in sorted(source.rglob('*')):
            if path.is_file() and path.suffix in CONFIG_SUFFIXES and '__pycache__' not in path.parts:
                destination = target / path.relative_to(source)
                self.mkpath(str(destination.parent))
                self.copy_file(str(path), str(destination))


def read_version() -> str:
    namespace = {}
    exec((HERE / 'mae_transfer' / 'version.py').read_text(), namespace)
    return namespace['__version__']


setup(
    name='mae_transfer',
    version=read_version(),
    description='MAE pretraining for ViTs and transfer to COCO detection, ADE20K segmentation, '
                'COCO pose and classification on the OpenMMLab stack',
    long_description=(HERE / 'README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['mae_transfer', 'mae_transfer.*']),
    python_requires='>=3.9',
    install_requires=[
        'timm>=1.0',
        'mmengine==0.10.7',
        'mmdet==3.3.0',
        'mmsegmentation==1.2.2',
        'pycocotools',
        'numpy',
        'matplotlib',
        'tqdm',  # progress bars of video inference
        'onnx',  # mae-transfer export
        'onnxruntime',  # the export's check and the onnxruntime backend
        'onnxscript',  # torch.onnx's dynamo exporter (--exporter dynamo)
        'regex',  # imported by mmseg without being declared
        'ftfy',   # likewise
    ],
    extras_require={
        'tests': ['pytest>=7', 'pytest-timeout'],
        'dev': ['pytest>=7', 'pytest-timeout', 'ruff'],
    },
    entry_points={'console_scripts': ['mae-transfer=mae_transfer.cli:main']},
    cmdclass={'build_py': BuildPyWithConfigs},
    license='Apache-2.0',
)
