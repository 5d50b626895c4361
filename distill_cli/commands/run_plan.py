"""The plan of ``distill run``: each step's config, as the command of the same name reads it (the file's top
level, then the step's section, then the flags), and the run's choices of teacher, student and folder,
made once before any compute. ``commands/run.py`` carries it out."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distill_cli.config import Config, EvaluateOptions, ExportOptions, PushOptions, load_config, load_step
from distill_cli.errors import UsageError

if TYPE_CHECKING:
    from distill_cli.modeling import ModelRef

STEPS = ("prepare", "finetune", "distill", "export", "evaluate", "push")
THE_TEACHER = "teacher"  # as the student: the fine-tuned teacher's own layers, ``student_layers`` of them
STUDENT_LAYERS = 3  # of the teacher's own layers, when the config names no number
# The student of a teacher that is not cut from: the suite's (BENCHMARKS.md "The suite") MiniLM-L6.
SMALL_STUDENT = "minilm-l6"


@dataclass
class RunPlan:
    """Every step's settings, made and checked before any compute."""

    folder: Path
    teacher: str  # what the teacher is fine-tuned from, or the finished run it is
    teacher_ref: ModelRef  # ``teacher``, resolved once
    student: str
    finetune: Config
    distill: Config
    export_cfg: Config
    export: ExportOptions
    evaluate_cfg: Config
    evaluate: EvaluateOptions
    push: PushOptions
    fingerprints: dict[str, str] = field(default_factory=dict)
    # neither teacher nor student was named and mpnet-base is not installed: MiniLM-L6 and its 3-layer cut
    fallback_pair: bool = False

    @property
    def teacher_trained(self) -> bool:
        """``teacher`` is a finished run: distilled from as it is, no finetune step."""
        return self.teacher_ref.run_dir is not None

    @property
    def steps(self) -> tuple[str, ...]:
        return STEPS if self.push.repo_id else STEPS[:-1]

    @property
    def teacher_dir(self) -> Path:
        return Path(self.distill.teacher)

    @property
    def student_dir(self) -> Path:
        return self.folder / "student"

    @property
    def export_dir(self) -> Path:
        return self.folder / ("student-onnx-int8" if self.export.quantize == "int8" else "student-onnx")

    def output_of(self, step: str) -> Path | None:
        """The file or folder a step leaves (prepare's is the cache, push's the Hub)."""
        return {
            "finetune": None if self.teacher_trained else self.teacher_dir,
            "distill": self.student_dir,
            "export": self.export_dir,
            "evaluate": self.folder / "eval_results.json",
        }.get(step)


def make_plan(config: Path | None, flags: dict[str, Any], output: Path | None, push: str | None) -> RunPlan:
    """Each step's config, as that command would read it, with the run's choices of teacher and student."""
    from distill_cli.data.sources import check_source
    from distill_cli.modeling import resolve_model

    common = {k: v for k, v in flags.items() if k not in ("teacher", "student", "student_layers", "name")}
    top = load_config(config, None, {**common, "name": flags.get("name")})
    finetune = load_config(config, "finetune", common)
    if not finetune.dataset:
        raise UsageError("distill run needs a dataset: --dataset (a file, folder or Hub name), or dataset: in --config")
    check_source(finetune.dataset)  # before a model is resolved: an installed MPNet is unpacked then
    folder = output or top.output or top.runs_dir / (top.name or default_name(finetune.dataset))
    distill = load_config(config, "distill", {**common, "student_layers": flags.get("student_layers")})
    export_cfg, export = load_step(config, "export", common, {"quantize": "int8"})
    evaluate_cfg, evaluate = load_step(config, "evaluate", common, {})
    _, push_options = load_step(config, "push", {}, {})
    if push:
        push_options = push_options.model_copy(update={"repo_id": push})
    named_teacher = flags.get("teacher") or given(distill, "teacher") or given(finetune, "student")
    teacher = named_teacher or default_teacher()
    if isinstance(teacher, list):
        raise UsageError("distill run fine-tunes one teacher: for an ensemble, distill distill --teacher A --teacher B")
    named_student = flags.get("student") or given(distill, "student")
    student = named_student or default_student(teacher)
    named = named_teacher or named_student or distill.student_layers
    fallback = not named and teacher != "mpnet-base"
    teacher_ref = resolve_model(teacher, finetune)
    teacher_dir = Path(teacher_ref.location) if teacher_ref.run_dir is not None else folder / "teacher"
    finetune.student, finetune.teacher, finetune.output, finetune.name = teacher, None, teacher_dir, None
    layers = distill.student_layers or (STUDENT_LAYERS if student == THE_TEACHER else None)
    distill.teacher, distill.output, distill.name = str(teacher_dir), folder / "student", None
    distill.student = str(teacher_dir) if student == THE_TEACHER else student
    distill.student_layers = layers
    return RunPlan(folder, teacher, teacher_ref, student, finetune, distill, export_cfg, export, evaluate_cfg,
                   evaluate, push_options, fallback_pair=fallback)  # fmt: skip


def given(cfg: Config, key: str) -> str | None:
    """``cfg``'s value of ``key`` where the config file set it, else None (the Config's own default)."""
    return getattr(cfg, key) if key in cfg.model_fields_set else None


def default_name(dataset: str) -> str:
    """The run's folder name: the dataset's (a file's stem)."""
    from distill_cli.runs import slug

    return slug(Path(dataset).stem if Path(dataset).suffix else dataset)


def default_teacher() -> str:
    """The suite's best teacher, MPNet (110M), where ``make install-teacher`` installed it; else MiniLM-L6."""
    from distill_cli.model_parts import installed_parts
    from distill_cli.modeling import MPNET_PARTS

    return "mpnet-base" if installed_parts(MPNET_PARTS) else "minilm-l6"


def fallback_advice(few_shot: bool, open_set: bool) -> str | None:
    """One line for a run on few-shot or open-set data whose teacher is MiniLM-L6 only because ``mpnet-base``
    is not installed: what the suite measured for that pair there, and how to get the pair that won."""
    if not (few_shot or open_set):
        return None
    from distill_cli.modeling import MPNET_PARTS

    return (
        "teacher MiniLM-L6 and its 3-layer cut, as mpnet-base is not installed: on the suite's few-shot and "
        "open-set sets that cut was behind a frozen MiniLM-L6 + LogisticRegression on 2 of 4, MPNet and "
        f'MiniLM-L6 distilled from it ahead on all 4 (BENCHMARKS.md, "The suite"); {MPNET_PARTS.install}'
    )


def default_student(teacher: str) -> str:
    """MiniLM-L6 for the MPNet teacher (a fifth of its size); else the teacher's own layers, cut."""
    return SMALL_STUDENT if teacher == "mpnet-base" else THE_TEACHER
