"""`workbench datasets`: the built-in datasets with row counts and format; with a NAME (or
any file / hub id), a preview of its rows and a validation summary."""
from ..data import list_datasets, preview, validate
from ..errors import WorkbenchError


def add_parser(sub):
    p = sub.add_parser("datasets", help="list built-in datasets, or preview / validate one")
    p.add_argument("name", nargs="?", help="built-in name, data file, saved dataset dir or hub id")
    p.add_argument("--preview", action="store_true", help="show the first rows (with NAME)")
    p.add_argument("-n", type=int, default=5, help="rows to preview (default 5)")
    p.add_argument("--format", help="convert to this format before previewing")
    p.add_argument("--split", default="train", choices=("train", "eval"))
    p.set_defaults(func=run)


def run(args) -> int:
    if args.n < 1:
        raise WorkbenchError(f"-n must be a positive number of rows, got {args.n}")
    if not args.name and (args.preview or args.format or args.split != "train"):
        raise WorkbenchError("--preview, --format and --split need a dataset NAME "
                             "(workbench datasets NAME --preview)")
    if not args.name:
        print(f"{'name':14} {'format':18} {'train':>6} {'eval':>5}  description")
        for d in list_datasets():
            rows = d.rows
            print(f"{d.name:14} {d.format:18} {rows['train']:>6} {rows['eval']:>5}  {d.description}")
        print("Local .jsonl/.json/.csv/.parquet files, save_to_disk directories and hub ids (org/name) also work.")
        return 0
    report = validate(args.name, args.format)
    print(report.summary())
    if args.preview:
        frame, detected = preview(args.name, n=args.n, format=args.format, split=args.split, on_error="skip")
        print(frame.map(_short).to_string())
    return 0 if report.ok else 2


def _short(value, width: int = 80) -> str:
    text = str(value).replace("\n", " ")
    return text if len(text) <= width else text[:width - 3] + "..."
