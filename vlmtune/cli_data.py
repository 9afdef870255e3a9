"""`vlmtune data check` and `vlmtune data show`: their imports load on use, so the CLI starts without torch."""
import json
import sys


def cmd_data_check(args) -> int:
    from .data.check import CheckConfig, check_file
    if bool(args.file) == bool(args.meta) or (args.file and not args.images):
        print('error: data check takes FILE --images ROOT, or --meta META_FILE (each source names its root)',
              file=sys.stderr)
        return 2
    cfg = CheckConfig(max_length=args.max_length, min_frames=args.min_frames)
    if args.model:
        cfg.max_length = args.max_length or 4096
    if args.meta:
        from .data.check_meta import check_meta_files
        kept, rejected = check_meta_files(args.meta, cfg, args.model, args.max_tiles, progress=not args.quiet)
    else:
        token_length_fn = None
        if args.model:
            from .formats import data_spec_for_folder
            spec = data_spec_for_folder(args.model, args.max_tiles, cfg.max_length)
            token_length_fn = spec.length_fn(args.images, cfg.max_length)
        as_rows = None
        if args.pairs:
            from .preference.data import pair_rows as as_rows
        report = check_file(args.file, args.images, cfg, token_length_fn=token_length_fn, kept_path=args.kept,
                            rejects_path=args.rejects, progress=not args.quiet, as_rows=as_rows)
        print(report.summary())
        if not report.total:
            return 0
        kept, rejected = report.kept, report.rejected
    if args.strict and rejected:
        print(f'error: --strict: {rejected} row(s) rejected (reasons above)', file=sys.stderr)
        return 1
    return 0 if kept else 1


def cmd_data_show(args) -> int:
    from .data.show import describe_sample, format_sample
    from .formats import data_spec_for_folder
    file, images, max_tiles = args.file, args.images, args.max_tiles
    if args.meta:  # a meta file's source: its rows, root and tile budget
        from .data.meta import source_named
        source = source_named(args.meta, args.source)
        file, images, max_tiles = source.annotation, source.root, source.max_dynamic_patch or max_tiles
    elif not (file and images):
        print('error: data show takes FILE --images ROOT, or --meta META_FILE [--source NAME]', file=sys.stderr)
        return 2
    info = describe_sample(file, images, data_spec_for_folder(args.model, max_tiles, args.max_length), args.index)
    if args.draw:
        from .data.show import draw_boxes, read_row
        drawn = draw_boxes(read_row(file, args.index), images, args.draw)
        print(f'drew {drawn} box(es) on the image: {args.draw}', file=sys.stderr)
    if args.json:
        keys = ('id', 'prompt', 'input_ids', 'labels', 'tile_count', 'token_count', 'images', 'video')
        print(json.dumps({k: info[k] for k in keys}, ensure_ascii=False))
    else:
        print(format_sample(info))
    return 0
