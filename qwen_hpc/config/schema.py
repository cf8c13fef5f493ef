"""The root config: what `qwen-hpc <stage>` composes from config/ and validates before anything runs.

Typed with dataclasses so that OmegaConf rejects unknown keys and wrong types at composition time, and
`__post_init__` rejects impossible values when the tree becomes Python objects (`to_object`).

One home for each default: the dataclasses (here and the domain configs they reuse). The stage files in
`config/stage/` restate those defaults with comments for the reader; tests/config/test_defaults.py keeps
the two equal. A process builds its typed config once (`compose.typed_config`) and hands stages only that.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qwen_hpc.config.launcher import LauncherConfig
from qwen_hpc.config.logger import LoggerConfig
from qwen_hpc.config.stages import (
    AgentEvalStageConfig,
    ContinuedPretrainStageConfig,
    DataStageConfig,
    EvaluateStageConfig,
    ExportHfStageConfig,
    ImportHfStageConfig,
    LongContextStageConfig,
    PPOStageConfig,
    PretrainStageConfig,
    RecipeConfig,
    ReportStageConfig,
    RewardModelPMPStageConfig,
    RewardModelStageConfig,
    SFTBranchStageConfig,
    SFTStageConfig,
    TokenizerStageConfig,
    TokensStageConfig,
)
from qwen_hpc.model.config import ModelConfig
from qwen_hpc.utils.config_fields import runtime


@dataclass
class RunConfig:
    """Identity and locations of one experiment: everything it writes lives in `<root>/<name>/`."""

    name: str = "tiny"
    root: str = "runs"
    seed: int = 1234
    # real datasets (eval sets, preference data ...) are read through this root, never from fixed paths
    data_root: str = "../shared/datasets"

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ValueError(f"run.name={self.name!r} must be a plain directory name")


@dataclass
class QwenConfig:
    run: RunConfig = field(default_factory=RunConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataStageConfig = field(default_factory=DataStageConfig)
    tokenizer: TokenizerStageConfig = field(default_factory=TokenizerStageConfig)
    tokens: TokensStageConfig = field(default_factory=TokensStageConfig)
    pretrain: PretrainStageConfig = field(default_factory=PretrainStageConfig)
    sft: SFTStageConfig = field(default_factory=SFTStageConfig)
    reward_model_pmp: RewardModelPMPStageConfig = field(default_factory=RewardModelPMPStageConfig)
    reward_model: RewardModelStageConfig = field(default_factory=RewardModelStageConfig)
    ppo: PPOStageConfig = field(default_factory=PPOStageConfig)
    agent_eval: AgentEvalStageConfig = field(default_factory=AgentEvalStageConfig)
    evaluate: EvaluateStageConfig = field(default_factory=EvaluateStageConfig)
    long_context: LongContextStageConfig = field(default_factory=LongContextStageConfig)
    report: ReportStageConfig = field(default_factory=ReportStageConfig)
    export_hf: ExportHfStageConfig = field(default_factory=ExportHfStageConfig)
    import_hf: ImportHfStageConfig = field(default_factory=ImportHfStageConfig)
    # the Code-Qwen / Math-Qwen branches (spec §10-11): the same stage code, their own sections
    code_pretrain: ContinuedPretrainStageConfig = field(default_factory=ContinuedPretrainStageConfig)
    code_sft: SFTBranchStageConfig = field(default_factory=SFTBranchStageConfig)
    math_sft: SFTBranchStageConfig = field(default_factory=SFTBranchStageConfig)
    math_evaluate: EvaluateStageConfig = field(
        default_factory=lambda: EvaluateStageConfig(tasks=["gsm8k", "math"], chat=True)
    )
    recipe: RecipeConfig = field(default_factory=RecipeConfig)
    # where and how stages run and are observed: never part of a stage's output (see config_fields)
    launcher: LauncherConfig = runtime(default_factory=LauncherConfig)
    logger: LoggerConfig = runtime(default_factory=LoggerConfig)
