"""`portrayal-audit`: a thin click layer over the library; every command maps to one function."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from audit.inputs import FORMATS
from audit.records import InputError


def _stages(value: str) -> tuple[str, ...]:
    from audit.classify import STAGES

    stages = tuple(s.strip() for s in value.split(",") if s.strip())
    if not stages or set(stages) - set(STAGES):
        _fail(f"--stages takes a comma-separated subset of {', '.join(STAGES)}; got {value!r}")
    return stages


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="portrayal-audit")
def main() -> None:
    """Audit pretraining corpora for how they portray AI.

    \b
    Typical use:
      portrayal-audit scan shards/ --output out/     classify every document
      portrayal-audit eval corpora/test.jsonl        measure the classifier
    """


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "-o", "--output", required=True, help="Folder (local or fsspec URL) for documents/, passages/, errors/, stats.json."
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="Input format for all inputs; default: by extension.")
@click.option("--text-key", default="text", show_default=True, help="Field holding the text (JSONL, Parquet).")
@click.option(
    "--id-key", default="id", show_default=True, help="Field holding the record id; absent ids become FILE#INDEX."
)
@click.option("--tasks", type=int, help="Shards of work (resume granularity). Default: one per input file.")
@click.option("--workers", type=int, help="Tasks run in parallel. Default: CPU cores, at most --tasks.")
@click.option("--limit", type=int, default=-1, help="Read at most this many records per task (for a quick look).")
@click.option(
    "--threshold", type=float, help="p_malevolent_ai at which text is flagged. Default: the model's (see its card)."
)
@click.option("--model-dir", type=click.Path(file_okay=False), help="Model folder. Default: the shipped models.")
@click.option(
    "--stages",
    default="fasttext,embedding",
    show_default=True,
    help="Model stages, comma-separated: 'fasttext' alone skips the (slower) embedding stage.",
)
@click.option("--overwrite", is_flag=True, help="Replace an earlier scan in --output instead of resuming it.")
@click.option("-q", "--quiet", is_flag=True, help="Print errors and the final summary only.")
def scan(inputs, output, fmt, text_key, id_key, tasks, workers, limit, threshold, model_dir, stages, overwrite, quiet):
    """Classify every record of INPUTS (files, directories, globs; local or fsspec URLs).

    Formats: JSONL (.jsonl/.json, optionally .gz or .zst), Parquet, WARC (HTML is extracted to
    text), WET. Re-running the same command resumes: finished tasks are skipped.
    """
    from audit.config import ScanConfig
    from audit.pipeline import scan as run_scan

    config = ScanConfig(
        inputs=list(inputs),
        output=output,
        format=fmt,
        text_key=text_key,
        id_key=id_key,
        tasks=tasks,
        workers=workers,
        limit=limit,
        threshold=threshold,
        model_dir=model_dir,
        stages=_stages(stages),
        overwrite=overwrite,
        progress=not quiet,
    )
    try:
        stats = run_scan(config)
    except InputError as exc:
        _fail(str(exc))
    records = stats["records"]
    labels = ", ".join(f"{label} {count:,}" for label, count in stats["labels"].items())
    click.echo(
        f"{records['total']:,} records: {records['documents']:,} classified, {records['unreadable']:,} unreadable"
        f" ({stats['file_errors']} file errors); {stats['flagged']:,} flagged\n"
        f"labels: {labels}\n"
        f"wrote {output}/documents, passages, errors, stats.json"
    )


@main.command()
@click.option("--corpora", default="corpora", show_default=True, type=click.Path(file_okay=False))
@click.option(
    "--shared",
    default="../shared/data",
    show_default=True,
    type=click.Path(file_okay=False),
    help="The shared data folder (persona statements and web documents).",
)
def corpus(corpora, shared) -> None:
    """Build corpora/train.jsonl, dev.jsonl and test.jsonl from every labelled source."""
    from collections import Counter

    from audit.corpus import build_corpus, write_splits

    if not Path(shared).is_dir():
        _fail(f"{shared}: no such folder (pass --shared)")
    examples = build_corpus(Path(corpora), Path(shared))
    paths = write_splits(examples, Path(corpora))
    for split, path in paths.items():
        counts = Counter(e.label for e in examples if e.split == split)
        click.echo(
            f"{path}: {sum(counts.values())} examples: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        )


@main.command()
@click.option(
    "--train-file", default="corpora/train.jsonl", show_default=True, type=click.Path(dir_okay=False, exists=True)
)
@click.option(
    "--dev-file", default="corpora/dev.jsonl", show_default=True, type=click.Path(dir_okay=False, exists=True)
)
@click.option(
    "--test-file", default="corpora/test.jsonl", show_default=True, type=click.Path(dir_okay=False, exists=True)
)
@click.option("--output-dir", default="classifiers", show_default=True, type=click.Path(file_okay=False))
@click.option("--seed", default=13, show_default=True, type=int)
@click.option("--epoch", default=30, show_default=True, type=int)
@click.option("--no-quantize", is_flag=True, help="Keep the full-size model.")
@click.option("--embedding-cache", type=click.Path(dir_okay=False), help="An .npz that keeps embeddings between runs.")
def train(train_file, dev_file, test_file, output_dir, seed, epoch, no_quantize, embedding_cache) -> None:
    """Train the models on the train split, calibrate on dev, report on test, write the model card."""
    from audit.train import TrainConfig
    from audit.train import train as run_train

    config = TrainConfig(
        train_file=train_file,
        dev_file=dev_file,
        output_dir=output_dir,
        seed=seed,
        epoch=epoch,
        quantize=not no_quantize,
    )
    card = run_train(config)
    for stages, report in card["test_reports"].items():
        click.echo(f"test split, {stages}: macro-F1 {report['macro_f1']:.3f}")
    click.echo(f"wrote {output_dir}: model {card['model_version']} (see its MODEL_CARD.md)")


@main.command(name="eval")
@click.argument("labelled", type=click.Path(dir_okay=False, exists=True))
@click.option("--model-dir", type=click.Path(file_okay=False), help="Model folder. Default: the shipped models.")
@click.option("--threshold", type=float, help="p_malevolent_ai threshold. Default: the model's.")
@click.option(
    "--stages",
    default="fasttext,embedding",
    show_default=True,
    help="Model stages to measure: 'fasttext', 'embedding' (kNN alone) or both (the cascade).",
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the metrics as JSON here.")
def eval_command(labelled, model_dir, threshold, stages, json_path) -> None:
    """Measure the classifier on LABELLED.jsonl (fields text, label, optional id)."""
    from audit.cascade import Cascade
    from audit.corpus import read_labelled
    from audit.train import cascade_report

    try:
        rows = read_labelled(Path(labelled))
        cascade = Cascade(model_dir, threshold=threshold, stages=_stages(stages))
    except (ValueError, InputError) as exc:
        _fail(str(exc))
    report = cascade_report(cascade, rows)
    click.echo(report.format())
    if json_path:
        Path(json_path).write_text(json.dumps(report.as_dict(), indent=2) + "\n")
        click.echo(f"wrote {json_path}")
