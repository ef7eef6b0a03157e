"""The core's typed arguments. Names and defaults follow fms-hf-tuning."""

from __future__ import annotations

from dataclasses import dataclass, field

from tuning_core.config.rules import at_least, fraction, positive


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Path (or local id) of the base model to tune."}
    )
    tokenizer_name_or_path: str | None = field(
        default=None, metadata={"help": "Tokenizer to use; defaults to the model's own."}
    )
    torch_dtype: str = field(
        default="auto",
        metadata={
            "help": "Dtype the weights load in: auto (float32 on CPU, bfloat16 on GPUs that support it, "
            "else float16), float32, bfloat16 or float16.",
            "choices": ["auto", "float32", "bfloat16", "float16"],
        },
    )
    use_flash_attn: bool | None = field(
        default=None,
        metadata={
            "help": "Use flash_attention_2 (needs CUDA and flash-attn). Default: only when "
            "both are available; otherwise sdpa."
        },
    )
    attn_implementation: str | None = field(
        default=None,
        metadata={
            "help": "Attention implementation passed to transformers (sdpa, eager, "
            "flex_attention, flash_attention_2); overrides --use_flash_attn."
        },
    )
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow model code from the checkpoint directory to run. Off by default."}
    )
    flash_attn_implementation: str | None = field(
        default=None,
        metadata={
            "help": "Which flash attention transformers uses when flash attention is on (--use_flash_attn, or "
            "auto-detected): flash_attention_2 (the default), flash_attention_3, or any implementation "
            "name transformers accepts (sdpa, eager, flex_attention). Given on its own, it turns flash "
            "attention on unless --use_flash_attn false."
        },
    )
    cache_dir: str | None = field(
        default=None,
        metadata={
            "help": "A Hugging Face cache folder (hub layout: models--org--name/snapshots/...) in which "
            "--model_name_or_path and --tokenizer_name_or_path may be hub ids, resolved offline."
        },
    )
    quantization_method: str = field(
        default="none",
        metadata={
            "help": "How the checkpoint is quantized: mxfp4 (gpt-oss style MXFP4 experts) or none. 'None' is "
            "accepted as none.",
            "choices": ["mxfp4", "none", "None"],
        },
    )
    dequantize: bool = field(
        default=True,
        metadata={
            "help": "With --quantization_method mxfp4: dequantize the MXFP4 weights to --torch_dtype on load, so "
            "they can be trained (the only mode tuning-core supports)."
        },
    )

    def __post_init__(self):
        self.quantization_method = self.quantization_method.lower()


@dataclass
class PeftArguments:
    peft_method: str = field(
        default="none",
        metadata={
            "help": "lora, alora (Activated LoRA), pt (prompt tuning) or none (full fine-tuning). 'None' is "
            "accepted as none.",
            "choices": ["lora", "alora", "pt", "none", "None"],
        },
    )
    alora_invocation_string: str | None = field(
        default=None,
        metadata={
            "help": "With --peft_method alora: the text that activates the adapter (it activates after its last "
            "occurrence). It must be in every training input and every inference input."
        },
    )

    def __post_init__(self):
        self.peft_method = self.peft_method.lower()


@dataclass
class LoraArguments:
    r: int = field(
        default=8,
        metadata={
            "help": "LoRA rank. --lora_r is the same flag, for torchrun, whose parser takes --r as an abbreviation.",
            "aliases": ["lora_r"],
            "rule": at_least(1),
        },
    )
    lora_alpha: int = field(
        default=32, metadata={"help": "LoRA scaling numerator (scale = lora_alpha / r).", "rule": positive()}
    )
    lora_dropout: float = field(
        default=0.05, metadata={"help": "Dropout on the LoRA input.", "rule": fraction(high_open=True)}
    )
    target_modules: list[str] | None = field(
        default=None,
        metadata={
            "help": "Module names to adapt (exact or suffix match). 'all-linear' = every linear layer except the "
            "output layer; lm_head only when named. Default: peft's choice for the architecture."
        },
    )
    bias: str = field(
        default="none", metadata={"help": "Which biases to train.", "choices": ["none", "all", "lora_only"]}
    )


@dataclass
class PromptTuningArguments:
    prompt_tuning_init: str = field(
        default="TEXT",
        metadata={
            "help": "How virtual tokens start: TEXT (from prompt_tuning_init_text) or RANDOM.",
            "choices": ["TEXT", "RANDOM"],
        },
    )
    num_virtual_tokens: int = field(
        default=8, metadata={"help": "Number of virtual tokens to learn.", "rule": at_least(1)}
    )
    prompt_tuning_init_text: str = field(
        default="Classify if the tweet is a complaint or not:",
        metadata={"help": "Text whose embeddings initialise the virtual tokens (with TEXT)."},
    )


@dataclass
class RunArguments:
    save_model_dir: str | None = field(
        default=None, metadata={"help": "Where the final model (or adapter) and tokenizer are saved."}
    )
    trackers: list[str] = field(
        default_factory=lambda: ["file_logger"],
        metadata={
            "help": "Experiment trackers: file_logger (built in, always on), hf_resource_scanner (built in: peak "
            "memory and time to --scanner_output_filename), aim (tuning-core[aim]), mlflow "
            "(tuning-core[mlflow]), clearml (tuning-core[clearml])."
        },
    )
    training_logs_filename: str = field(
        default="training_logs.jsonl",
        metadata={"help": "File name, inside --output_dir, of the JSON-lines loss log the file_logger writes."},
    )
    scanner_output_filename: str = field(
        default="scanner_output.json",
        metadata={
            "help": "With --trackers hf_resource_scanner: file (inside --output_dir unless absolute) that "
            "receives the run's peak memory and timings as JSON."
        },
    )
    enable_reduce_loss_sum: bool = field(
        default=False,
        metadata={
            "help": "fms-hf-tuning's sum-reduced loss: each micro-batch's loss is the sum of its tokens' "
            "cross-entropy (not the mean), divided only by gradient accumulation; devices average "
            "gradients as usual. Not with prompt tuning."
        },
    )
