"""``image`` namespace: ``image.build``, ``image.push`` and ``image.graph``."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from invoke import Collection, Context

from ..console import emit
from ..errors import BuildFailed, ConfigError
from .common import CONFIG_DEFAULTS, dry, on_builder, plan, runner, settings, split_list, task

if TYPE_CHECKING:  # the build API is imported by the tasks that run it (fast inv --list)
    from ..config import Settings
    from ..fanout import Share
    from ..images import Explanation, ImageResult
    from ..versioning import VersionInfo

HELP = {
    "name": "Build only this image and what it depends on; repeat for several.",
    "platform": "Platform or comma-separated platforms, e.g. linux/amd64,linux/arm64 "
    "(default: config 'platforms', else the engine's own).",
    "parallel": "How many images build at once (default 0: config 'parallel', else CPU count).",
    "fail_fast": "Stop starting new builds after the first failure.",
    "force": "Rebuild every image even when its inputs are unchanged.",
    "host": "Drive this build host's Docker engine over SSH (DOCKER_HOST=ssh://...; a "
    "[[tool.buildkit.hosts]] name) instead of the local one.",
    "quiet": "Print nothing until the summary (failures still print). Config: progress.",
    "verbose": "Plain timestamped lines plus every BuildKit step as it runs.",
    "batch": "Build what must be built in one docker buildx bake first (on unless config "
    "'batch' is false); --no-batch builds image by image.",
    "atomic": "Push every image by digest and make its tags only once every image succeeded "
    "(on unless config 'atomic' is false); --no-atomic pushes tags as each image finishes.",
    "hosts": "Spread the platforms over these build hosts (comma-separated [[tool.buildkit.hosts]] "
    "names): each builds its share of --platform natively with its own engine over SSH and "
    "pushes by digest; then one manifest list per tag is made from their digests.",
    "builder": "The buildx builder to build with (a 'docker buildx ls' name; default: config "
    "'builder', else buildx's current). Not with --host or --hosts (their hosts' engines build).",
    "reproducible": "Build every image reproducibly (config 'reproducible'): SOURCE_DATE_EPOCH "
    "= the commit time (or env SOURCE_DATE_EPOCH), timestamps rewritten, through an OCI "
    "layout loaded into the store (and pushed by digest): same sources, same digests.",
    "explain": "Before building, print for every image whether it builds or is cached, and why "
    "(the files, Dockerfile, build args or base images that changed), as image.plan does.",
}


def print_summary(results: list[ImageResult], brief: bool = False) -> None:
    """One line per image (only the references when ``brief``: the live view showed the rest),
    and the last log lines of each failure."""
    width = max((len(r.name) for r in results), default=4)
    print("\nimages:")
    for r in results:
        ref = r.references[0] if r.references else (r.error or "")
        if brief:
            print(f"  {r.name:<{width}}  {ref}")
        else:
            print(f"  {r.name:<{width}}  {r.status:<9}  {r.seconds:6.1f}s  {ref}")
    for r in results:
        if r.status == "failed" and r.log_tail:
            print(f"\n--- {r.name}: last lines of {r.log} ---\n{r.log_tail}", file=sys.stderr)


def run_build(
    c: Context,
    name: list[str] | None,
    platform: str | None,
    parallel: int,
    fail_fast: bool,
    force: bool,
    batch: bool,
    push: bool,
    host: str | None = None,
    quiet: bool = False,
    verbose: bool = False,
    explain: bool = False,
    atomic: bool = True,
    builder: str | None = None,
    hosts: str | None = None,
    reproducible: bool = False,
) -> list[ImageResult]:
    """The body shared by image.build and image.push."""
    from ..config import BUILDER_NAME

    if parallel < 0:
        raise ConfigError(f"--parallel: expected a positive integer, got {parallel}")
    if builder is not None and not BUILDER_NAME.fullmatch(builder):
        raise ConfigError(f"--builder: expected a buildx builder name, got {builder!r}")
    s = settings(c, parallel=parallel or None, builder=builder, reproducible=reproducible or None)
    if hosts is not None:
        if host or s.builder:
            given = "--host" if host else "--builder (or config 'builder')"
            raise ConfigError(f"--hosts: spreads over build hosts' own engines; drop {given}")
        from ..config import platform_list
        from ..fanout import assign

        names = split_list(hosts)
        if not names:
            raise ConfigError("--hosts: expected comma-separated host names, got nothing")
        shares = assign(
            platform_list(platform) or list(s.platforms), [s.host(n, "--hosts") for n in names]
        )
        return _run_build(
            c, s, name, platform, fail_fast, force, batch, push, quiet, verbose, explain,
            None, atomic, shares,
        )  # fmt: skip
    if host:
        from ..hosts import engine_over_ssh

        if s.builder:  # a builder here would send the CLI and the SDK to different engines
            raise ConfigError(
                "--host: builds with that host's own engine; drop --builder (or config 'builder')"
            )
        with engine_over_ssh(s.host(host), s) as env:
            emit(f"engine: {host} over SSH ({s.host(host).address})")
            return _run_build(
                c, s, name, platform, fail_fast, force, batch, push, quiet, verbose, explain,
                env, atomic,
            )  # fmt: skip
    return _run_build(
        c, s, name, platform, fail_fast, force, batch, push, quiet, verbose, explain, None, atomic
    )


def _print_explanations(found: list[Explanation]) -> None:
    """``--explain``: each image's plan line, before anything builds."""
    from .. import plans

    emit("\n".join(plans.explanation_lines(found)))


def _run_build(
    c: Context,
    s: Settings,
    name: list[str] | None,
    platform: str | None,
    fail_fast: bool,
    force: bool,
    batch: bool,
    push: bool,
    quiet: bool,
    verbose: bool,
    explain: bool = False,
    engine_env: dict[str, str] | None = None,
    atomic: bool = True,
    shares: list[Share] | None = None,
) -> list[ImageResult]:
    # what only the end of the run needs (size budgets, the report) is imported there: the
    # first bake starts sooner
    from .. import credentials, images, progress
    from ..config import platform_list

    platforms = platform_list(platform)

    bp = plan(s, name)
    info = bp.version
    graph = bp.graph
    for line in graph.warnings():
        emit(f"warning: {line}", err=True)
    r = runner(c, s)
    r.env.update(engine_env or {})  # another engine (--host): its DOCKER_HOST for every command
    mode = progress.choose(quiet, verbose) if s.progress == "auto" else s.progress
    if (r.dry or shares) and mode == "live":  # a fan-out prints a line per host and image
        mode = "plain"
    creds = credentials.resolve(s) if push or s.cache == "registry" else None
    view = progress.Progress(mode, graph.order(), s.logs_dir)
    with on_builder(s, r), credentials.docker_login(r, creds, s.own_docker_config) as env, view:
        r.env.update(env)
        if shares:
            from .. import fanout

            results = fanout.push(
                s, bp, r, shares, force=force, batch=s.batch and batch, fail_fast=fail_fast,
                atomic=s.atomic and atomic,
            )  # fmt: skip
        else:
            results = images.build_images(
                s,
                bp,
                r,
                push=push,
                platforms=platforms,
                fail_fast=fail_fast,
                force=force,
                batch=s.batch and batch,
                atomic=s.atomic and atomic,
                on_start=view.on_start,
                on_done=view.on_done,
                on_plan=_print_explanations if explain else None,
            )
    from .. import quality, report

    print_summary(results, brief=mode == "live")
    built = {x.name: x.references[0] for x in results if x.status in ("succeeded", "cached")}
    sizes = [] if r.dry or shares else quality.size_budgets(s, built)
    for sc in sizes:
        verdict = "OVER" if sc.over else "ok"
        print(f"size {sc.name}: {sc.size_mb:.1f} MB of max_size_mb {sc.max_size_mb:g} ({verdict})")
    if not r.dry:
        report.update(
            s.report_path,
            info,
            images=[x.as_dict() for x in results],
            size_budgets=[
                {
                    "name": sc.name,
                    "reference": sc.reference,
                    "size_mb": round(sc.size_mb, 3),
                    "max_size_mb": sc.max_size_mb,
                    "over": sc.over,
                }
                for sc in sizes
            ],
        )
    bad = images.not_built(results)
    if images.any_failed(results):
        raise BuildFailed(
            f"{len(bad)} of {len(results)} images did not build: "
            + ", ".join(f"{x.name} ({x.status})" for x in bad)
            + f"; see {s.report_path}"
        )
    quality.enforce_budgets(sizes)
    return results


@task(
    iterable=["name"],
    help={k: v for k, v in HELP.items() if k not in ("atomic", "hosts")},
    writes=True,
)
def build(
    c: Context,
    name: list[str] | None = None,
    platform: str | None = None,
    parallel: int = 0,
    fail_fast: bool = False,
    force: bool = False,
    batch: bool = True,
    host: str | None = None,
    quiet: bool = False,
    verbose: bool = False,
    explain: bool = False,
    builder: str | None = None,
    reproducible: bool = False,
) -> None:
    """Build every image with ``docker buildx build``, in dependency order, loaded into the
    local image store.

    Images come from ``[tool.buildkit.images]`` and ``[tool.buildkit.discover]``. Tags
    ``<registry>/<name>:<version>`` and ``:latest`` (``registry`` from config or
    ``INVOKE_BUILDKIT_REGISTRY``) with OCI labels. An image whose Dockerfile names another
    project image (``FROM base``, ``FROM <registry>/base:any``, ``COPY --from=base``) builds from
    this run's result of it. ``--parallel`` images build at once (config ``parallel``, default
    CPU count); a failed image skips what depends on it while every independent image still
    builds, unless ``--fail-fast``. An image whose inputs (context as Docker sees it,
    Dockerfile, build args, target, platforms, the images it builds on) are unchanged is not
    rebuilt but reported ``cached``; ``--force`` rebuilds. Per-image logs go to
    ``<output_dir>/logs/``; results to ``build-report.json``. Exits non-zero when any image
    fails, 130 on Ctrl-C.

    ``--host NAME`` builds with that build host's engine over SSH instead (the build context is
    streamed by BuildKit, nothing is copied, images stay in the host's store); ``remote.run``
    instead runs the whole task there and brings ``<output_dir>`` back. ``--builder NAME``
    (config ``builder``) builds with that buildx builder (remote, kubernetes, multi-node...).

    ``--reproducible`` (config ``reproducible``): ``SOURCE_DATE_EPOCH`` is the commit's time
    (env ``SOURCE_DATE_EPOCH`` overrides), every layer's timestamps are rewritten to it and
    the image is written to an OCI layout, then loaded into the store with its digest as the
    image ID: two builds of one commit give the same per-platform manifest digests.
    """
    run_build(
        c,
        name,
        platform,
        parallel,
        fail_fast,
        force,
        batch,
        push=False,
        host=host,
        quiet=quiet,
        verbose=verbose,
        explain=explain,
        builder=builder,
        reproducible=reproducible,
    )


@task(iterable=["name"], help=HELP, writes=True)
def push(
    c: Context,
    name: list[str] | None = None,
    platform: str | None = None,
    parallel: int = 0,
    fail_fast: bool = False,
    force: bool = False,
    batch: bool = True,
    host: str | None = None,
    quiet: bool = False,
    verbose: bool = False,
    explain: bool = False,
    atomic: bool = True,
    builder: str | None = None,
    hosts: str | None = None,
    reproducible: bool = False,
) -> None:
    """Build and push every image (or ``--name`` ones) to ``registry``.

    Same plan and tags as image.build; with several platforms each tag is a manifest list.
    An image the registry already holds with the same input key is not rebuilt (``cached``).

    Atomic (default; config ``atomic``, ``--no-atomic``): every image is built into the local
    store and an OCI layout, pushed by digest with ``oras`` (no tag), and only when every
    image succeeded are the version and ``latest`` tags made in the registry; after a failure
    or Ctrl-C no tag of this run exists and the report's ``pushed`` says what was pushed by
    digest (``tagged`` false). ``--no-atomic`` pushes each image's tags as it finishes.

    Credentials: user from config ``registry_user`` or ``BUILDKIT_REGISTRY_USER``, password
    from ``BUILDKIT_REGISTRY_PASSWORD`` or the file ``password_file``, given to
    ``docker login --password-stdin`` in a throw-away ``DOCKER_CONFIG`` (config
    ``own_docker_config = true`` uses yours). A refused login or push fails at once; transient
    push errors are retried ``push_retries`` times (default 3) with exponential backoff.
    ``build-report.json`` records each image's pushed references, the digest the registry
    reports and each platform's manifest digest.

    ``--hosts a,b`` spreads the platforms (``--platform``, else config ``platforms``) over
    those ``[[tool.buildkit.hosts]]``: each platform goes to a host whose ``platforms`` include
    it (the one given fewest so far), every host builds the graph for its platforms with its
    own engine over SSH (logs in ``<output_dir>/hosts/<host>/logs/``) and pushes by digest,
    then each image's tags are made as one manifest list of the hosts' digests
    (``docker buildx imagetools create``). A host that fails fails its platform of each image
    it could not push, and the image, naming the host; atomic as above (no tag after a
    failure). The report gives each image's ``hosts`` (platform -> host). A host does not
    rebuild an image whose version tag (or ``latest``) already lists manifests carrying its
    input key for that host's platforms: those manifests go into the new list (``cached``).

    Provenance (config ``provenance``: ``min`` default, ``max``, ``off``): each pushed image
    carries a SLSA provenance attestation per platform; the report lists their digests
    (``attestations``). ``--reproducible`` builds as image.build does and pushes the OCI
    layout by digest (always atomic), so the registry holds the digest built: per-platform
    manifests are the same for every build of one commit; the manifest list's digest too when
    ``provenance = "off"`` (an attestation records its own build's times, moby/buildkit#3421).
    """
    run_build(
        c,
        name,
        platform,
        parallel,
        fail_fast,
        force,
        batch,
        push=True,
        host=host,
        quiet=quiet,
        verbose=verbose,
        explain=explain,
        atomic=atomic,
        builder=builder,
        hosts=hosts,
        reproducible=reproducible,
    )


@task(
    iterable=["name"],
    help={
        "format": "Output form: text (default), json or dot (Graphviz).",
        "name": "Show only this image and what it depends on; repeat for several.",
    },
)
def graph(c: Context, format: str = "text", name: list[str] | None = None) -> None:
    """Print the build plan without building: images, what each depends on, and the order.

    ``--format json`` prints exactly ``{"images": [{"name", "context", "dockerfile",
    "depends_on"}...], "order": [...]}`` (``context`` relative to the project root,
    ``dockerfile`` relative to the context, as in the config) and nothing else on stdout.
    """
    from .. import plans
    from ..graph import project_graph

    if format not in plans.FORMATS:
        raise ConfigError(f"--format: expected one of {', '.join(plans.FORMATS)}, got {format!r}")
    s = settings(c)
    graph = project_graph(s, name or [])
    for line in graph.warnings():
        emit(f"warning: {line}", err=True)
    print(plans.render(graph, s.root, format))


@task(
    iterable=["name"],
    help={
        "format": "Output form: text (default) or json.",
        "name": "Plan only this image and what it depends on; repeat for several.",
        "platform": HELP["platform"],
        "push": "Plan image.push: look for each image's input key in the registry instead of "
        "the local image store.",
    },
)
def plan_(
    c: Context,
    format: str = "text",
    name: list[str] | None = None,
    platform: str | None = None,
    push: bool = False,
) -> None:
    """Say, for every image, whether image.build (or with ``--push`` image.push) would build it
    or reuse it, and why, without building anything.

    An image is ``cached`` when the local store (``--push``: the registry) holds an image with
    its input key under its version tag or ``latest``; else ``build``, with what changed since
    the image held there: context files changed, added or removed (``.dockerignore``
    honoured), the Dockerfile, build args, target, platforms, or ``base image <name>
    changed``; or that nothing is held yet. Changes are named from the inputs recorded for
    each key under ``~/.cache/buildkit-tasks/inputs`` (env ``BUILDKIT_CACHE_HOME``,
    ``XDG_CACHE_HOME``); a key this machine never planned says only that the inputs differ.
    ``skip``: the image's ``platforms`` exclude what was asked. Lookups are read-only.
    ``--format json`` prints ``{"images": [{"name", "decision", "reasons", "key", "held",
    "held_key"}]}`` and nothing else on stdout.
    """
    from .. import images, plans
    from ..config import platform_list

    if format not in plans.EXPLAIN_FORMATS:
        raise ConfigError(
            f"--format: expected one of {', '.join(plans.EXPLAIN_FORMATS)}, got {format!r}"
        )
    s = settings(c)
    bp = plan(s, name)
    for line in bp.graph.warnings():
        emit(f"warning: {line}", err=True)
    found = images.explain_images(s, bp, runner(c, s), push=push, platforms=platform_list(platform))
    print(plans.render_explanations(found, format))


@task(iterable=["name"], help={"name": "Scan only this image; repeat for several."})
def scan(c: Context, name: list[str] | None = None) -> None:
    """Scan the built images (``<registry>/<name>:<version>``) with trivy when it is installed,
    failing on findings of config ``scan.severity`` (default ``CRITICAL``). Without trivy it
    prints a warning and succeeds: the scan is a gate only where trivy exists."""
    from .. import quality

    s = settings(c)
    refs = plan(s, name).references()
    if quality.scan(s, refs, runner(c, s)):
        print(f"scan: {len(refs)} images, no {s.scan_severity} findings")


@task
def sign(c: Context) -> None:
    """Sign every image the build report (``<output_dir>/build-report.json``, from image.push)
    lists as pushed, by digest (``<repository>@sha256:...``), with cosign.

    Key: config ``cosign_key`` (a private key file from ``cosign generate-key-pair``), else env
    ``BUILDKIT_COSIGN_KEY`` holding the key; its password from env ``COSIGN_PASSWORD`` (read
    by cosign itself, never on a command line, in output or in the report). Config
    ``tlog_upload`` (default false) records signatures in the Rekor transparency log; off,
    nothing leaves for sigstore.dev (private registries, offline). The report gets
    ``signatures`` (each image's reference and whether it was signed). cosign output goes to
    ``<output_dir>/logs/<name>.sign.log``.

    SBOMs (config ``sbom``, default true): when syft or trivy is installed (on PATH or beside
    the interpreter; syft first), each pushed platform manifest gets its SPDX JSON SBOM, kept
    as ``<output_dir>/sbom/<name>.<os>-<arch>.spdx.json`` and attached with ``cosign attest
    --type spdxjson`` under the same key; the report gets ``sboms``. Without a generator one
    line says so and the images are only signed. Generator and cosign output go to
    ``<output_dir>/logs/<name>.sbom.log``. Exits non-zero when any image was not signed or
    any SBOM not attached.
    """
    from .. import report, signing
    from ..engines import sbom

    s = settings(c)
    r = runner(c, s)
    data = report.load(s.report_path)
    if _nothing_pushed_yet(c, data, "image.sign"):
        return
    done = signing.sign(s, r, data)
    for x in done:
        verdict = "signed" if x.ok else f"NOT signed: {x.error}"
        print(f"sign {x.name}: {verdict}  {x.reference}")
    sections: dict[str, object] = {"signatures": [x.as_dict() for x in done]}
    generator = signing.sbom_generator() if s.sbom else None
    sboms = signing.attach_sboms(s, r, data, generator) if generator else []
    if s.sbom and generator is None:
        print(f"sign: no SBOM generator found; images signed without SBOMs ({sbom.INSTALL})")
    for y in sboms:
        verdict = f"attested ({y.generator}, {y.packages} packages)" if y.ok else "NOT attested"
        print(f"sbom {y.name} {y.platform}: {verdict}  {y.error or y.path or y.reference}")
    if generator:
        sections["sboms"] = [y.as_dict() for y in sboms]
    if not r.dry:
        report.update(s.report_path, _report_version(data), **sections)
    bad = [x.name for x in done if not x.ok]
    bad += [f"{y.name} SBOM ({y.platform})" for y in sboms if not y.ok]
    if bad:
        raise BuildFailed(f"image.sign: {len(bad)} failed: {', '.join(bad)}")


@task(
    help={
        "rebuild": "Also rebuild the report's version from a clean git checkout (reproducible, "
        "no cache, not pushed) and compare every image's digests with the registry's.",
        "signatures": "Check cosign signatures against config 'cosign_public_key' (default: "
        "when that key is configured).",
    }
)
def verify(c: Context, rebuild: bool = False, signatures: bool | None = None) -> None:
    """Check the images the build report lists as pushed: their cosign signatures, and with
    ``--rebuild`` that a rebuild from source gives the same digests.

    Signatures (when config ``cosign_public_key`` is set, or ``--signatures``): each
    ``<repository>@<digest>`` must carry a signature that verifies with that public key
    (Rekor asked only with ``tlog_upload``), and each SBOM the report's ``sboms`` lists as
    attached (image.sign) an SPDX attestation that does.
    ``--rebuild``: the report's commit is cloned into a temporary directory (plus
    ``remote_include`` files) and built in reproducible mode without cache and without
    pushing; each platform's manifest digest must equal the
    registry's (the manifest list's too when ``provenance = "off"``); an image that differs is
    named with its platform and first differing layer. A report of a dirty work tree cannot be
    rebuilt (error). Results go to the report's ``verification``. Exits non-zero when any
    check fails; nothing to check is an error too.
    """
    from .. import report, signing

    s = settings(c)
    r = runner(c, s)
    data = report.load(s.report_path)
    if _nothing_pushed_yet(c, data, "image.verify"):
        return
    pushed = signing.pushed_images(data)
    check_signatures = signatures if signatures is not None else s.cosign_public_key is not None
    if not check_signatures and not rebuild and dry(c):
        print("# image.verify: nothing to check (no cosign_public_key, no --rebuild)")
        return
    if not check_signatures and not rebuild:
        raise ConfigError(
            "image.verify: nothing to check; set cosign_public_key (signatures) or pass --rebuild"
        )
    results: dict[str, dict[str, object]] = {n: {"name": n, "reference": ref} for n, ref in pushed}
    failed: list[str] = []
    if check_signatures:
        for x in signing.verify(s, r, data):
            results[x.name]["signature"] = "verified" if x.ok else f"failed: {x.error}"
            print(
                f"verify {x.name}: signature {'verified' if x.ok else 'FAILED: ' + (x.error or '')}"
            )
            if not x.ok:
                failed.append(f"{x.name} (signature)")
        sbom_checks: dict[str, dict[str, str]] = {}
        for att in signing.verify_sboms(s, r, data):
            verdict = "verified" if att.ok else f"failed: {att.error}"
            sbom_checks.setdefault(att.name, {})[att.platform] = verdict
            results[att.name]["sboms"] = sbom_checks[att.name]
            print(f"verify {att.name}: SBOM {att.platform} {'verified' if att.ok else 'FAILED'}")
            if not att.ok:
                failed.append(f"{att.name} (SBOM {att.platform})")
    if rebuild:
        from .. import rebuild as rebuilding

        with on_builder(s, r):
            compared = rebuilding.rebuild(s, r, data, pushed)
        for y in compared:
            results[y.name]["rebuild"] = "identical" if y.identical else f"differs: {y.difference}"
            verdict = "identical" if y.identical else f"DIFFERS: {y.difference}"
            print(f"verify {y.name}: rebuild {verdict}")
            if not y.identical:
                failed.append(f"{y.name} (rebuild: {y.difference})")
    if not r.dry:
        report.update(s.report_path, _report_version(data), verification=list(results.values()))
    if failed:
        raise BuildFailed(f"image.verify: {len(failed)} checks failed: {'; '.join(failed)}")


def _nothing_pushed_yet(c: Context, data: dict[str, object], task_name: str) -> bool:
    """Under ``--dry``, whether the report lists no pushed image (said in one line): a dry
    run before any push has nothing to show; a real one fails (signing.pushed_images)."""
    from .. import signing
    from ..errors import BuildkitError

    if not dry(c):
        return False
    try:
        signing.pushed_images(data)
    except BuildkitError as exc:
        print(f"# {task_name}: {exc}")
        return True
    return False


def _report_version(data: dict[str, object]) -> VersionInfo:
    """The version a loaded report was written for (so updating it keeps its sections)."""
    from ..versioning import VersionInfo

    return VersionInfo.from_dict(data["version"])  # type: ignore[arg-type]


ns = Collection("image")
ns.add_task(build, default=True)
ns.add_task(sign)
ns.add_task(verify)
ns.add_task(scan)
ns.add_task(push)
ns.add_task(graph)
ns.add_task(plan_, name="plan")
ns.configure(CONFIG_DEFAULTS)
