"""ChatML for generation: re-exported from `qwen_hpc.alignment.chatml`, the one ChatML implementation."""

from qwen_hpc.alignment.chatml import (  # noqa: F401
    DEFAULT_SYSTEM,
    IM_END,
    IM_START,
    chat_stop_ids,
    chatml_ids,
    render_chatml,
)
