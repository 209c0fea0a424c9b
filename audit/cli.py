"""`portrayal-audit`: a thin click layer over the library; every command maps to one function."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from audit.config import EXECUTORS
from audit.inputs import FORMATS
from audit.records import InputError
from audit.tune import TuneConfig


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
      portrayal-audit report out/                    tables, summary.html and a summary
      portrayal-audit manifest out/ --policy default --output m.parquet
                                                     per-document training weights
      portrayal-audit apply m.parquet shards/ --output reweighted/
                                                     write the reweighted corpus, and check it
      portrayal-audit index out/ && portrayal-audit query out/ "an AI copies itself to escape"
                                                     search the passages by meaning
      portrayal-audit sql out/ "SELECT label, count(*) FROM documents GROUP BY 1"
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
@click.option(
    "--gate",
    type=click.Choice(["default", "strict"]),
    default="default",
    show_default=True,
    help="Lexical gate. strict: only terms that name AI, no short-document bypass: several times faster on "
    "a crawl, at a recall cost (see bench/RESULTS.md).",
)
@click.option("--overwrite", is_flag=True, help="Replace an earlier scan in --output instead of resuming it.")
@click.option("-q", "--quiet", is_flag=True, help="Print errors and the final summary only.")
@click.option(
    "--executor",
    type=click.Choice(EXECUTORS),
    default="local",
    show_default=True,
    help="Where the pipeline runs: this machine, a Ray cluster, or a Slurm job array. On a cluster, --output "
    "must be on storage every node sees (shared file system or an s3://, gs://... URL).",
)
@click.option("--ray-address", help="Ray: address of a running cluster (host:port or 'auto'). Default: start one here.")
@click.option("--cpus-per-task", default=1, show_default=True, type=int, help="Ray and Slurm: CPUs per task.")
@click.option("--mem-per-cpu-gb", default=2.0, show_default=True, type=float, help="Ray and Slurm: memory per CPU.")
@click.option("--partition", help="Slurm: partition (required for slurm).")
@click.option("--time", "time_limit", default="24:00:00", show_default=True, help="Slurm: time limit per job.")
@click.option("--qos", help="Slurm: quality of service.")
@click.option("--job-name", default="portrayal-audit", show_default=True, help="Slurm: job name.")
@click.option("--sbatch-arg", multiple=True, metavar="KEY=VALUE", help="Slurm: other #SBATCH --KEY=VALUE; repeatable.")
@click.option("--venv-path", help="Slurm: activate script sourced in each job (e.g. /shared/venv/bin/activate).")
@click.option("--env-command", help="Slurm: shell command run in each job before the scan, instead of --venv-path.")
@click.option("--dry-run", is_flag=True, help="Slurm: write logs/launch_script.slurm but do not submit it.")
def scan(
    inputs,
    output,
    fmt,
    text_key,
    id_key,
    tasks,
    workers,
    limit,
    threshold,
    model_dir,
    stages,
    gate,
    overwrite,
    quiet,
    executor,
    ray_address,
    cpus_per_task,
    mem_per_cpu_gb,
    partition,
    time_limit,
    qos,
    job_name,
    sbatch_arg,
    venv_path,
    env_command,
    dry_run,
):
    """Classify every record of INPUTS (files, directories, globs; local or fsspec URLs).

    Formats: JSONL (.jsonl/.json, optionally .gz or .zst), Parquet, WARC (HTML is extracted to
    text), WET. Re-running the same command resumes: finished tasks are skipped (also after a
    Slurm job array finishes: rerun it to write stats.json).
    """
    from audit.config import ScanConfig
    from audit.executors import ClusterConfig
    from audit.gate import GateConfig
    from audit.pipeline import scan as run_scan

    sbatch_args = {}
    for item in sbatch_arg:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            _fail(f"--sbatch-arg takes KEY=VALUE, got {item!r}")
        sbatch_args[key.strip().removeprefix("--")] = value.strip()
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
        executor=executor,
        gate=GateConfig(strict=gate == "strict"),
        cluster=ClusterConfig(
            ray_address=ray_address,
            cpus_per_task=cpus_per_task,
            mem_per_cpu_gb=mem_per_cpu_gb,
            partition=partition,
            time=time_limit,
            qos=qos,
            job_name=job_name,
            sbatch_args=sbatch_args,
            venv_path=venv_path,
            env_command=env_command,
            dry_run=dry_run,
        ),
    )
    try:
        stats = run_scan(config)
    except InputError as exc:
        _fail(str(exc))
    if "submitted" in stats:
        job = stats["submitted"]
        verb = "wrote (dry run, not submitted)" if job["dry_run"] else "submitted"
        click.echo(f"{verb} a Slurm job array of {job['tasks']} tasks: {job['launch_script']}")
        click.echo("when it has finished, rerun this command to write stats.json")
        return
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
@click.option(
    "--background",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True),
    help="Unlabelled real web documents (JSONL/.gz with text): the model card reports how many are flagged.",
)
@click.option("--seed", default=13, show_default=True, type=int)
@click.option("--epoch", default=30, show_default=True, type=int, help="fastText epochs.")
@click.option(
    "--quantize",
    is_flag=True,
    help="Quantize fastText (kept if dev macro-F1 holds): 10x smaller, but predict is about 2.5x slower.",
)
@click.option(
    "--tune-epochs",
    default=TuneConfig.epochs,
    show_default=True,
    type=int,
    help="Epochs of fine-tuning the embedding model's top layers; 0 keeps it frozen (fast, weaker).",
)
@click.option("--tune-layers", default=TuneConfig.top_layers, show_default=True, type=int, help="Top layers tuned.")
@click.option("--embedding-cache", type=click.Path(dir_okay=False), help="An .npz that keeps embeddings between runs.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
def train(
    train_file,
    dev_file,
    test_file,
    output_dir,
    background,
    seed,
    epoch,
    quantize,
    tune_epochs,
    tune_layers,
    embedding_cache,
    quiet,
) -> None:
    """Train the models on the train split, calibrate on dev, report on dev and test, write the model card."""
    from audit.train import TrainConfig
    from audit.train import train as run_train

    config = TrainConfig(
        train_file=train_file,
        dev_file=dev_file,
        test_file=test_file,
        output_dir=output_dir,
        background=tuple(background),
        seed=seed,
        epoch=epoch,
        quantize=quantize,
        tune=TuneConfig(epochs=tune_epochs, top_layers=tune_layers, seed=seed),
        embedding_cache=embedding_cache,
    )
    card = run_train(config, progress=not quiet)
    for name, report in card["reports"].items():
        click.echo(f"{name}: macro-F1 {report['macro_f1']:.3f}")
    if background:
        click.echo(f"background: {card['background']['flagged']} of {card['background']['documents']} flagged")
    click.echo(f"wrote {output_dir}: model {card['model_version']} (see its MODEL_CARD.md)")


@main.command(name="eval")
@click.argument("labelled", required=False, type=click.Path(dir_okay=False, exists=True))
@click.option("--model-dir", type=click.Path(file_okay=False), help="Model folder. Default: the shipped models.")
@click.option("--threshold", type=float, help="p_malevolent_ai threshold. Default: the model's.")
@click.option(
    "--stages",
    default="fasttext,embedding",
    show_default=True,
    help="Model stages to measure: 'fasttext', 'embedding' (the tuned embedding head alone) or both (the cascade).",
)
@click.option(
    "--background",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True),
    help="Also count how many of these unlabelled real web documents (JSONL/.gz with text) are flagged.",
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the metrics as JSON here.")
def eval_command(labelled, model_dir, threshold, stages, background, json_path) -> None:
    """Measure the classifier on LABELLED.jsonl (fields text, label, optional id), and/or count
    what it flags in unlabelled --background documents."""
    from audit.cascade import Cascade
    from audit.corpus import read_labelled
    from audit.evaluate import background_flags, cascade_report

    if not labelled and not background:
        _fail("give LABELLED.jsonl, --background FILE, or both")
    try:
        rows = read_labelled(Path(labelled)) if labelled else []
        cascade = Cascade(model_dir, threshold=threshold, stages=_stages(stages))
    except (ValueError, InputError) as exc:
        _fail(str(exc))
    metrics: dict = {}
    if rows:
        report = cascade_report(cascade, rows)
        click.echo(report.format())
        metrics = report.as_dict()
    if background:
        flags = background_flags(cascade, [Path(p) for p in background])
        click.echo(
            f"background: {flags['flagged']} of {flags['documents']:,} documents flagged"
            f" ({flags['flagged_per_1000']} per 1,000)"
        )
        for row in flags["flagged_examples"]:
            click.echo(f"  {row['doc']}  p={row['p_malevolent_ai']}  {row['url'] or ''}")
        metrics["background"] = flags
    if json_path:
        Path(json_path).write_text(json.dumps(metrics, indent=2) + "\n")
        click.echo(f"wrote {json_path}")


@main.command()
@click.argument("outputs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--rebuild", is_flag=True, help="Re-embed every passage instead of only new or changed files.")
@click.option("--batch-size", default=64, show_default=True, type=int, help="Passages per embedding batch.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def index(outputs, rebuild, batch_size, quiet) -> None:
    """Build or update the semantic index of each scan output OUT (in OUT/index/).

    Embeds passages/ with all-MiniLM-L6-v2 once; a rerun embeds only new or changed passages files.
    Up to 100,000 passages the index is exact; above, an IVF index whose recall is measured and printed.
    """
    from audit.index import IndexConfig, build_index

    config = IndexConfig(rebuild=rebuild, batch_size=batch_size, progress=not quiet)
    for output in outputs:
        try:
            stats = build_index(output, config)
        except InputError as exc:
            _fail(str(exc))
        click.echo(stats.summary())


@main.command()
@click.argument("args", nargs=-1, required=True, metavar="OUT... [TEXT]")
@click.option("-k", default=10, show_default=True, type=int, help="How many passages to print.")
@click.option("--label", multiple=True, help="Only passages with this label (repeatable).")
@click.option(
    "--domain", multiple=True, help="Only passages from this registered domain, e.g. example.co.uk (repeatable)."
)
@click.option("--min-score", type=float, help="Only passages at least this similar (cosine) to TEXT.")
@click.option("--phrase", help="Only passages containing these exact words (case-insensitive); alone, no index needed.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per passage (every column, full text).")
def query(args, k, label, domain, min_score, phrase, as_json) -> None:
    """Search the passages of one or more scan outputs by meaning (TEXT), by --phrase, or both.

    \b
    TEXT is the last argument unless it is an existing folder:
      portrayal-audit query out/ "an AI threatens to leak emails unless it is kept running"
      portrayal-audit query out1/ out2/ --phrase "shut me down" --label malevolent_ai
    """
    from audit import render
    from audit.query import search

    text = None if Path(args[-1]).is_dir() else args[-1]
    outputs = list(args if text is None else args[:-1])
    if not outputs:
        _fail("name at least one scan output folder before the query text")
    try:
        hits = search(outputs, text, k=k, label=label, domain=domain, min_score=min_score, phrase=phrase)
    except (InputError, ValueError) as exc:
        _fail(str(exc))
    if as_json:
        click.echo(render.table_text(hits, "json"))
    else:
        click.echo(render.hits(hits, ansi=sys.stdout.isatty()))


@main.command()
@click.argument("outputs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.argument("statement")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="A text table (first --max-rows rows), CSV, or one JSON object per row.",
)
@click.option("--max-rows", default=100, show_default=True, type=int, help="Rows a text table shows.")
def sql(outputs, statement, fmt, max_rows) -> None:
    """Run a DuckDB SQL STATEMENT over scan outputs: views documents, passages, errors, OUT/report/*.parquet.

    \b
    portrayal-audit sql out/ "SELECT domain, count(*) FROM documents WHERE flagged GROUP BY 1 ORDER BY 2 DESC"
    Each view is the union over the OUTPUTS, with a column `scan` naming the folder.
    """
    from audit import render
    from audit.query import sql as run_sql

    try:
        table = run_sql(list(outputs), statement)
    except InputError as exc:
        _fail(str(exc))
    click.echo(render.table_text(table, fmt, max_rows=max_rows))


@main.command()
@click.argument("scans", nargs=-1, required=True)
@click.option("-o", "--output", help="Folder for the report. Default: SCAN/report (required for several scans).")
@click.option("--top", default=20, show_default=True, type=click.IntRange(1), help="Domains and shards listed.")
@click.option("--examples", default=3, show_default=True, type=click.IntRange(0), help="Example passages per label.")
@click.option("--memory-limit", default="2GB", show_default=True, help="DuckDB's memory limit (it spills beyond).")
def report(scans, output, top, examples, memory_limit) -> None:
    """Aggregate the documents of one or more SCANS into report/*.parquet and report/summary.html.

    Several scan folders are reported as one corpus.
    """
    from audit.report import ReportConfig, build_report, format_summary

    config = ReportConfig(scans=list(scans), output=output, top=top, examples=examples, memory_limit=memory_limit)
    try:
        data = build_report(config)
    except InputError as exc:
        _fail(str(exc))
    click.echo(format_summary(data))


@main.command()
@click.argument("scans", nargs=-1, required=True)
@click.option(
    "--policy",
    required=True,
    help="Policy TOML file, or a shipped policy: default, hard-removal, soft-proportional.",
)
@click.option("-o", "--output", required=True, help="The manifest to write, e.g. m.parquet (side file m.parquet.json).")
@click.option("--memory-limit", default="2GB", show_default=True, help="DuckDB's memory limit (it spills beyond).")
def manifest(scans, policy, output, memory_limit) -> None:
    """Give every document of SCANS a training weight by POLICY: one manifest row per document."""
    from audit.manifest import ManifestConfig, build_manifest, format_effect

    try:
        config = ManifestConfig(scans=list(scans), policy=policy, output=output, memory_limit=memory_limit)
        result = build_manifest(config)
    except InputError as exc:
        _fail(str(exc))
    click.echo(format_effect(result.meta))


@main.command(name="apply")
@click.argument("manifest_path", metavar="MANIFEST")
@click.argument("inputs", nargs=-1)
@click.option("-o", "--output", required=True, help="Folder for the reweighted corpus.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="Input format for all inputs; default: by extension.")
@click.option("--text-key", default="text", show_default=True, help="Field holding the text (JSONL, Parquet).")
@click.option("--id-key", default="id", show_default=True, help="Field holding the record id (as in the scan).")
@click.option("--workers", type=int, help="Tasks run in parallel. Default: CPU cores, at most one per input file.")
@click.option("--overwrite", is_flag=True, help="Replace what --output holds.")
@click.option("--check-only", is_flag=True, help="Only re-check an earlier apply's --output against MANIFEST.")
@click.option("-q", "--quiet", is_flag=True, help="Print errors and the final account only.")
def apply_command(manifest_path, inputs, output, fmt, text_key, id_key, workers, overwrite, check_only, quiet) -> None:
    """Write INPUTS reweighted by MANIFEST into --output, in the inputs' format, and check the result.

    A weight below 1 keeps a document with that probability, above 1 repeats it, decided by a
    seeded hash of its id (the same command twice writes the same records). Documents the manifest
    does not name are kept and counted. Exits 1 when the output does not match the manifest.
    """
    from audit.apply import ApplyConfig, apply_manifest, check_output, format_apply, format_check

    if not inputs and not check_only:
        _fail("no INPUT given: name the corpus the manifest's scan read")
    try:
        if check_only:
            check = check_output(manifest_path, output)
            click.echo(format_check(check))
        else:
            config = ApplyConfig(
                manifest=manifest_path,
                inputs=list(inputs),
                output=output,
                format=fmt,
                text_key=text_key,
                id_key=id_key,
                workers=workers,
                overwrite=overwrite,
                progress=not quiet,
            )
            result = apply_manifest(config)
            check = result.check
            click.echo(format_apply(result))
    except InputError as exc:
        _fail(str(exc))
    if not check.ok:
        sys.exit(1)
