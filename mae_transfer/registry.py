"""The project's registries: children of mmengine's root registries under the scope 'mae_transfer'.

Every class that a config names is registered here, never into mmdet.registry or mmseg.registry, so that
mmseg can reach our backbone without importing mmdet. A config under default scope 'mmdet' or 'mmseg'
names our classes with the prefix, e.g. `type='mae_transfer.MAEViT'`; mmengine then imports this module,
finds the child registry of the root by its scope, and imports the `locations` below on first lookup.
This module imports no models: the locations are loaded lazily, on the first build. A registry gets a
`locations` entry once a package of ours registers something into it.

Our own modules build their sub-modules (a pose model's backbone, head, loss and codec, a classifier's
backbone, the pipeline's codec) with `mae_transfer.utils.builder.build_module`, never with `Registry.build`,
which would switch to the registry of the current default scope (mmdet's or mmseg's).
"""
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import INFERENCERS as MMENGINE_INFERENCERS
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import RUNNER_CONSTRUCTORS as MMENGINE_RUNNER_CONSTRUCTORS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import STRATEGIES as MMENGINE_STRATEGIES
from mmengine.registry import TASK_UTILS as MMENGINE_TASK_UTILS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import WEIGHT_INITIALIZERS as MMENGINE_WEIGHT_INITIALIZERS
from mmengine.registry import Registry

SCOPE = 'mae_transfer'

# Runner machinery: we add nothing yet, but a config with default_scope='mae_transfer' looks here first.
RUNNERS = Registry('runner', parent=MMENGINE_RUNNERS, scope=SCOPE)
RUNNER_CONSTRUCTORS = Registry('runner constructor', parent=MMENGINE_RUNNER_CONSTRUCTORS, scope=SCOPE)
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, scope=SCOPE, locations=['mae_transfer.engine'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope=SCOPE, locations=['mae_transfer.engine'])
LOG_PROCESSORS = Registry('log processor', parent=MMENGINE_LOG_PROCESSORS, scope=SCOPE)
STRATEGIES = Registry('strategy', parent=MMENGINE_STRATEGIES, scope=SCOPE, locations=['mae_transfer.engine'])

# Data.
# checked_coco imports mmdet: a location of its own, so that mae_transfer.datasets (the transforms' location,
# which mmseg configs reach) stays free of mmdet.
DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, scope=SCOPE,
                    locations=['mae_transfer.datasets', 'mae_transfer.datasets.checked_coco'])
DATA_SAMPLERS = Registry('data sampler', parent=MMENGINE_DATA_SAMPLERS, scope=SCOPE,
                         locations=['mae_transfer.datasets'])
# load_image (LoadImageSkipUnreadable) has a location of its own too: nothing in mae_transfer.datasets imports it.
TRANSFORMS = Registry('transform', parent=MMENGINE_TRANSFORMS, scope=SCOPE,
                      locations=['mae_transfer.datasets', 'mae_transfer.datasets.load_image'])

# Models.
# mae_transfer.models imports its registering sub-packages lazily (see its docstring), so they are listed here.
MODEL_LOCATIONS = ['mae_transfer.models.backbones', 'mae_transfer.models.necks', 'mae_transfer.models.heads',
                   'mae_transfer.models.pose', 'mae_transfer.models.classifiers', 'mae_transfer.models.mae_pretrainer']
MODELS = Registry('model', parent=MMENGINE_MODELS, scope=SCOPE, locations=MODEL_LOCATIONS)
MODEL_WRAPPERS = Registry('model wrapper', parent=MMENGINE_MODEL_WRAPPERS, scope=SCOPE,
                          locations=['mae_transfer.engine'])
WEIGHT_INITIALIZERS = Registry('weight initializer', parent=MMENGINE_WEIGHT_INITIALIZERS, scope=SCOPE)
TASK_UTILS = Registry('task util', parent=MMENGINE_TASK_UTILS, scope=SCOPE, locations=['mae_transfer.codecs'])

# Optimisation.
OPTIMIZERS = Registry('optimizer', parent=MMENGINE_OPTIMIZERS, scope=SCOPE, locations=['mae_transfer.engine'])
OPTIM_WRAPPERS = Registry('optim wrapper', parent=MMENGINE_OPTIM_WRAPPERS, scope=SCOPE,
                          locations=['mae_transfer.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry('optimizer wrapper constructor', parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
                                      scope=SCOPE, locations=['mae_transfer.engine'])
PARAM_SCHEDULERS = Registry('parameter scheduler', parent=MMENGINE_PARAM_SCHEDULERS, scope=SCOPE,
                            locations=['mae_transfer.engine'])

# Evaluation and visualisation.
METRICS = Registry('metric', parent=MMENGINE_METRICS, scope=SCOPE, locations=['mae_transfer.evaluation'])
EVALUATOR = Registry('evaluator', parent=MMENGINE_EVALUATOR, scope=SCOPE)
VISUALIZERS = Registry('visualizer', parent=MMENGINE_VISUALIZERS, scope=SCOPE,
                       locations=['mae_transfer.evaluation'])
VISBACKENDS = Registry('vis backend', parent=MMENGINE_VISBACKENDS, scope=SCOPE)
INFERENCERS = Registry('inferencer', parent=MMENGINE_INFERENCERS, scope=SCOPE)
FUNCTIONS = Registry('function', parent=MMENGINE_FUNCTIONS, scope=SCOPE, locations=['mae_transfer.engine'])
