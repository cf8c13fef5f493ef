"""One config dataclass per stage. Domain components bring their own dataclasses; a stage config
adds only what the stage itself needs (its resources, its knobs). Fields made with `runtime(...)` say how
the stage runs (resources, workers, memory knobs) and never enter its config hash
(`qwen_hpc.utils.config_fields`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional  # noqa: UP035 - OmegaConf needs typing.Dict

from qwen_hpc.agents.config import AgentEvalConfig
from qwen_hpc.alignment.config import (
    EmbeddedSFTConfig,
    SFTConfig,
    tiny_chat_optimizer,
    tiny_chat_tasks,
    tiny_chat_train,
)
from qwen_hpc.config.resources import ResourceOverrides
from qwen_hpc.data.config import DataConfig
from qwen_hpc.model.long_context import SETTINGS
from qwen_hpc.rlhf.config import PPOConfig, RewardModelConfig, SyntheticPairsConfig
from qwen_hpc.sandbox.config import SandboxConfig
from qwen_hpc.tokenizer.config import TokenizerConfig
from qwen_hpc.training.config import OptimizerConfig, TrainConfig
from qwen_hpc.utils.config_fields import runtime


@dataclass
class DataStageConfig(DataConfig):
    resources: ResourceOverrides = runtime(default_factory=ResourceOverrides)


@dataclass
class TokenizerStageConfig(TokenizerConfig):
    resources: ResourceOverrides = runtime(default_factory=ResourceOverrides)


@dataclass
class TokensStageConfig:
    workers: int = runtime(2)
    # of the workers, how many are threads of the stage's own process (the rest spawned processes): they
    # start at once and share one vocabulary, and tiktoken encodes without the GIL, so two threads scale
    # like two processes; more queue on the GIL for JSON parsing and per-document Python (~10-20 %)
    caller_threads: int = runtime(2)
    append_eod: bool = True
    resources: ResourceOverrides = runtime(default_factory=ResourceOverrides)

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"tokens.workers={self.workers} must be >= 1")
        if self.caller_threads < 0:
            raise ValueError(f"tokens.caller_threads={self.caller_threads} must be >= 0")


@dataclass
class PretrainStageConfig:
    train: TrainConfig = field(default_factory=TrainConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    # empty: random init; else initial weights only (fresh optimizer and LR schedule) from any checkpoint
    # folder (import_hf's output, a pretrain folder), its checkpoints/ root or one iter_* folder
    init_checkpoint: str = ""
    resources: ResourceOverrides = runtime(default_factory=ResourceOverrides)


@dataclass
class ContinuedPretrainStageConfig(PretrainStageConfig):
    """A pretraining branch that starts from another model's weights (Code-Qwen, spec §10): the pretrain
    stage's code with its own section, run folder and token mixture. Optimizer, LR schedule and data order
    start fresh; only the weights come from `init_checkpoint`."""

    init_checkpoint: str = ""  # "" = the pretrain stage's latest checkpoint; else a checkpoint root or folder
    # tokens-stage source name -> mixture weight; sources not named are left out (Code-Qwen: code only)
    source_weights: Dict[str, float] = field(default_factory=lambda: {"code": 1.0})  # noqa: UP006
    seq_length: Optional[int] = None  # noqa: UP045  None = model.seq_length (Code-Qwen: 8192)
    rotary_base: Optional[float] = None  # noqa: UP045  None = model.rotary_base

    def __post_init__(self) -> None:
        if not self.source_weights or any(not w > 0 for w in self.source_weights.values()):
            raise ValueError(f"source_weights={dict(self.source_weights)} needs >= 1 source, weights > 0")
        if self.seq_length is not None and self.seq_length < 1:
            raise ValueError(f"seq_length={self.seq_length} must be >= 1")
        if self.rotary_base is not None and not self.rotary_base > 0:
            raise ValueError(f"rotary_base={self.rotary_base} must be positive")


EVAL_TASKS = ("perplexity", "mmlu", "ceval", "cmmlu", "gsm8k", "math", "humaneval", "mbpp", "bbh")


@dataclass
class SFTStageConfig(SFTConfig):
    """The `sft` stage: SFTConfig with the tiny embedded default's run (config/stage/sft.yaml restates it)."""

    train: TrainConfig = field(default_factory=tiny_chat_train)
    optimizer: OptimizerConfig = field(default_factory=tiny_chat_optimizer)
    embedded: EmbeddedSFTConfig = field(default_factory=tiny_chat_tasks)
    heldout_eval: int = 200  # all held-out conversations: ~146 arithmetic questions, a score to about ±4 points
    resources: ResourceOverrides = runtime(default_factory=ResourceOverrides)


@dataclass
class RewardModelPMPStageConfig(RewardModelConfig):
    """`reward_model_pmp`: phase 1 (preference-model pretraining) on the larger comparison set."""

    resources: ResourceOverrides = runtime(default_factory=ResourceOverrides)


@dataclass
class RewardModelStageConfig(RewardModelConfig):
    """`reward_model`: phase 2 (fine-tuning) on a smaller set of its own (another synthetic draw)."""

    synthetic: SyntheticPairsConfig = field(default_factory=lambda: SyntheticPairsConfig(train_pairs=500, seed=1))
    resources: ResourceOverrides = runtime(default_factory=ResourceOverrides)


@dataclass
class PPOStageConfig(PPOConfig):
    resources: ResourceOverrides = runtime(default_factory=ResourceOverrides)


@dataclass
class SFTBranchStageConfig(SFTConfig):
    """An SFT branch (Code-Qwen-Chat, Math-Qwen-Chat; spec §10-11): the sft stage's code with its own
    section and run folder; `init_checkpoint` "" = the branch's upstream training stage."""

    seq_length: Optional[int] = None  # noqa: UP045  None = model.seq_length (Math-Qwen-Chat: 1024)
    resources: ResourceOverrides = runtime(default_factory=ResourceOverrides)

    def __post_init__(self) -> None:
        if self.seq_length is not None and self.seq_length < 1:
            raise ValueError(f"seq_length={self.seq_length} must be >= 1")


@dataclass
class RecipeConfig:
    """Which optional branches of the DAG `workflow/Snakefile` builds (`rule all`)."""

    code_qwen: bool = False  # code_pretrain -> code_sft (spec §10)
    math_qwen: bool = False  # math_sft -> math_evaluate (spec §11)
    rlhf: bool = True  # reward_model -> ppo, when those stages exist in this checkout
    # fail: a switched-on branch whose input files are missing stops planning | skip: leave that branch out
    # (with a warning), e.g. tiny's math branch on a fresh clone without ../shared/datasets/gsm8k
    missing_data: str = "fail"

    def __post_init__(self) -> None:
        if self.missing_data not in ("fail", "skip"):
            raise ValueError(f"recipe.missing_data={self.missing_data!r} must be fail|skip")


@dataclass
class AgentEvalStageConfig(AgentEvalConfig):
    resources: ResourceOverrides = runtime(default_factory=ResourceOverrides)


@dataclass
class EvaluateStageConfig:
    # perplexity (held-out split of the pretraining blend) and the benchmarks of Qwen §2.6 / Table 2
    tasks: list[str] = field(default_factory=lambda: list(EVAL_TASKS))
    limit: int = 0  # > 0: at most this many samples per benchmark (round-robin over subjects/tasks)
    # empty: the pretrain stage's latest checkpoint; else a checkpoint folder the project wrote, an
    # `import_hf` folder or a Hugging Face Qwen2 folder
    checkpoint: str = ""
    chat: bool = False  # Table 5: 0-shot ChatML prompts for SFT/RLHF models (spec §8.3)
    missing_data: str = "fail"  # fail: a selected benchmark without data stops preflight | skip: drop it
    batch_size: int = 8  # questions per forward (multiple choice) / prompts per generate call
    max_new_tokens: int = 512  # greedy generation budget (Qwen's generation_config)
    math_split: str = "math500"  # math500 (Lightman et al.) | full (the 5,000 test problems)
    samples_per_task: int = 1  # code tasks: n samples per problem (temperature below) for pass@k
    temperature: float = 0.8  # only when samples_per_task > 1
    pass_k: list[int] = field(default_factory=lambda: [1])
    eval_iters: int = 20  # perplexity
    micro_batch_size: int = 8  # perplexity
    # HumanEval/MBPP programs: limits per program, parallel sandboxes, isolation (qwen_hpc/sandbox/config.py)
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    # the model's layout in this job, the keys pretraining uses (null: pretrain.train's). The checkpoint is
    # resharded on load, so it need not be the layout that trained it; the ranks left over after TP x PP
    # split the samples (data parallel). An HF folder is read whole (TP = PP = 1; import_hf it to shard it).
    # How the job runs, not what it measures: never in the config hash.
    tensor_model_parallel_size: Optional[int] = runtime(None)  # noqa: UP045 - OmegaConf needs Optional
    pipeline_model_parallel_size: Optional[int] = runtime(None)  # noqa: UP045
    resources: ResourceOverrides = runtime(default_factory=ResourceOverrides)

    def layout(self, train: TrainConfig) -> tuple[int, int]:
        """(TP, PP) of this job: this section's keys, else those `train` (pretrain.train) trained with."""
        tp = self.tensor_model_parallel_size or train.tensor_model_parallel_size
        pp = self.pipeline_model_parallel_size or train.pipeline_model_parallel_size
        return tp, pp

    def __post_init__(self) -> None:
        for name in ("tensor_model_parallel_size", "pipeline_model_parallel_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"evaluate.{name}={value!r} must be an integer >= 1 (or null: pretrain.train's)")
        if self.eval_iters < 1:
            raise ValueError(f"evaluate.eval_iters={self.eval_iters} must be >= 1")
        if self.micro_batch_size < 1:
            raise ValueError(f"evaluate.micro_batch_size={self.micro_batch_size} must be >= 1")
        unknown = [t for t in self.tasks if t not in EVAL_TASKS]
        if unknown or not self.tasks:
            raise ValueError(f"evaluate.tasks has {unknown or 'nothing'}; choose from {', '.join(EVAL_TASKS)}")
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"evaluate.tasks={list(self.tasks)} names a task twice")
        if self.missing_data not in ("fail", "skip"):
            raise ValueError(f"evaluate.missing_data={self.missing_data!r} must be fail|skip")
        if self.math_split not in ("math500", "full"):
            raise ValueError(f"evaluate.math_split={self.math_split!r} must be math500|full")
        for name in ("batch_size", "max_new_tokens", "samples_per_task"):
            if getattr(self, name) < 1:
                raise ValueError(f"evaluate.{name}={getattr(self, name)} must be >= 1")
        if self.limit < 0:
            raise ValueError(f"evaluate.limit={self.limit} must be >= 0 (0 = everything)")
        if not self.pass_k or any(k < 1 or k > self.samples_per_task for k in self.pass_k):
            raise ValueError(
                f"evaluate.pass_k={list(self.pass_k)} must be in 1..samples_per_task={self.samples_per_task}"
            )
        if self.temperature < 0:
            raise ValueError(f"evaluate.temperature={self.temperature} must be >= 0")


@dataclass
class LongContextStageConfig:
    # multiples of model.seq_length (L) to score at; Table 3 of the paper is L/2 ... 16L for L = 2048
    lengths: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0, 4.0, 8.0, 16.0])
    settings: list[str] = field(
        default_factory=lambda: ["plain", "dynamic_ntk", "dynamic_ntk+logn", "dynamic_ntk+logn+window"]
    )
    num_documents: int = 8  # held-out documents, each at least the longest length + 1 tokens
    held_out: str = "valid"  # valid | test: which held-out part of pretrain.train.split to read
    batch_size: int = 1
    attention_chunk: int = runtime(1024)  # queries per attention block of a long prefill (memory ~ chunk x keys)
    # empty: the pretrain stage's latest checkpoint with `model`; else an HF folder or an import_hf folder
    checkpoint: str = ""
    resources: ResourceOverrides = runtime(default_factory=ResourceOverrides)

    def __post_init__(self) -> None:
        if not self.lengths or any(x <= 0 for x in self.lengths):
            raise ValueError(f"long_context.lengths={list(self.lengths)} must be positive multiples of L")
        unknown = [s for s in self.settings if s not in SETTINGS]
        if unknown or not self.settings:
            raise ValueError(
                f"long_context.settings has {unknown or 'nothing'}; choose from {', '.join(SETTINGS)}"
            )
        if self.held_out not in ("valid", "test"):
            raise ValueError(f"long_context.held_out={self.held_out!r} must be valid|test")
        for name in ("num_documents", "batch_size", "attention_chunk"):
            if getattr(self, name) < 1:
                raise ValueError(f"long_context.{name}={getattr(self, name)} must be >= 1")


@dataclass
class ReportStageConfig:
    title: str = "qwen-hpc report"
    smoothing: int = 10
    resources: ResourceOverrides = runtime(default_factory=ResourceOverrides)

    def __post_init__(self) -> None:
        if self.smoothing < 1:
            raise ValueError(f"report.smoothing={self.smoothing} must be >= 1")


@dataclass
class ExportHfStageConfig:
    # empty: this run's pretrain folder; else any folder with model_config.json (import_hf's output, a
    # pretrain folder), its checkpoints/ root or one iter_* folder
    checkpoint: str = ""
    # empty: runs/<experiment>/export_hf/hf
    output: str = ""
    # empty: the checkpoint folder's tokenizer/; else a folder with one *.tiktoken, a .tiktoken, or an HF folder
    tokenizer: str = ""
    dtype: str = "float32"
    resources: ResourceOverrides = runtime(default_factory=ResourceOverrides)

    def __post_init__(self) -> None:
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"export_hf.dtype={self.dtype!r} must be float32|bfloat16|float16")


@dataclass
class ImportHfStageConfig:
    hf_path: str = ""  # a Hugging Face Qwen2 folder (required to run the stage)
    output: str = ""  # empty: runs/<experiment>/import_hf/model
    tp: int = 1
    pp: int = 1
    resources: ResourceOverrides = runtime(default_factory=ResourceOverrides)

    def __post_init__(self) -> None:
        if self.tp < 1 or self.pp < 1:
            raise ValueError(f"import_hf.tp={self.tp} and import_hf.pp={self.pp} must be >= 1")
