"""Stack config validation: every bad input names its field path and says how to fix it.

Shape and catalog-free checks come from `components.spec.load_cluster_spec` (SpecError); checks that need
the GPU or model catalog come from `components.planning.cluster.plan_cluster` (SizingError, a SpecError subclass).
Each case starts from `base()` and breaks one thing.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.planning.types import ClusterPlan, SizingError
from components.spec import ClusterSpec, ExistingBackendSpec, SpecError, load_cluster_spec
from components.stacks import plan_for

PROJECT = Path(__file__).resolve().parents[1]
STACKS = sorted((PROJECT / "stacks").glob("Pulumi.*.yaml"))

Config = dict[str, Any]
Mutator = Callable[[Config], None]

_BASE: Config = {
    "storageClass": "fast",
    "auth": {"allowPlainHttp": True, "clients": [{"name": "tests"}]},
    "pools": [
        {
            "name": "h100",
            "gpu": "H100-SXM-80GB",
            "gpusPerNode": 8,
            "backend": {"kind": "existing", "nodeNames": ["gpu-01", "gpu-02"]},
        }
    ],
    "models": [
        {
            "name": "qwen-32b",
            "model": "Qwen/Qwen2.5-32B-Instruct",
            "pool": "h100",
            "maxModelLen": 32768,
        }
    ],
}

GKE: Config = {"kind": "gke", "project": "acme-ml", "location": "europe-west4", "cluster": "inference"}

# pydantic's own wording, which the operator should never see: it names no fix.
PYDANTIC_PHRASES = ("Traceback", "Input should be", "Extra inputs", "String should", "Field required")


def base() -> Config:
    """A fresh valid config: one existing pool of 2 x 8 H100, one model."""
    return copy.deepcopy(_BASE)


def plan(cfg: Config) -> ClusterPlan:
    spec = load_cluster_spec(cfg)
    return plan_for(spec)


def problems(cfg: object) -> SpecError:
    """The error a config raises, from the spec stage or the sizing stage."""
    with pytest.raises(SpecError) as info:
        spec = load_cluster_spec(cfg)
        plan_for(spec)
    return info.value


# ---------------------------------------------------------------- mutators


def top(**fields: Any) -> Mutator:
    def mutate(cfg: Config) -> None:
        cfg.update(fields)

    return mutate


def model(**fields: Any) -> Mutator:
    def mutate(cfg: Config) -> None:
        cfg["models"][0].update(fields)

    return mutate


def model_without(key: str) -> Mutator:
    def mutate(cfg: Config) -> None:
        del cfg["models"][0][key]

    return mutate


def add_model(**fields: Any) -> Mutator:
    def mutate(cfg: Config) -> None:
        cfg["models"].append(fields)

    return mutate


def duplicate_model(cfg: Config) -> None:
    cfg["models"].append(copy.deepcopy(cfg["models"][0]))


def pool(**fields: Any) -> Mutator:
    def mutate(cfg: Config) -> None:
        cfg["pools"][0].update(fields)

    return mutate


def pool_without(key: str) -> Mutator:
    def mutate(cfg: Config) -> None:
        del cfg["pools"][0][key]

    return mutate


def backend(**fields: Any) -> Mutator:
    def mutate(cfg: Config) -> None:
        cfg["pools"][0]["backend"].update(fields)

    return mutate


def backend_without(key: str) -> Mutator:
    def mutate(cfg: Config) -> None:
        del cfg["pools"][0]["backend"][key]

    return mutate


def new_pool(**fields: Any) -> Mutator:
    """Replace the pool (keeping its name, so the model still points at it)."""

    def mutate(cfg: Config) -> None:
        cfg["pools"][0] = {"name": cfg["pools"][0]["name"], **fields}

    return mutate


def chain(*mutators: Mutator) -> Mutator:
    def mutate(cfg: Config) -> None:
        for m in mutators:
            m(cfg)

    return mutate


def broken(*mutators: Mutator) -> Config:
    cfg = base()
    chain(*mutators)(cfg)
    return cfg


# ---------------------------------------------------------------- one problem each

# (mutation, stage that must catch it, exact field path, phrases the message must contain)
CASES = [
    # ---- shape (SpecError, no catalog needed)
    pytest.param(
        top(modles=[]),
        SpecError,
        "modles",
        ("unknown key", "did you mean 'models'?", "allowed keys: kubernetesVersion"),
        id="unknown-top-level-key",
    ),
    pytest.param(
        model(maxModelLength=4096),
        SpecError,
        "models[0].maxModelLength",
        ("unknown key", "did you mean 'maxModelLen'?"),
        id="unknown-model-key",
    ),
    pytest.param(
        backend(nodeName=["gpu-03"]),
        SpecError,
        "pools[0].backend.nodeName",
        ("unknown key", "did you mean 'nodeNames'?", "allowed keys: kind, nodeNames"),
        id="unknown-existing-backend-key",
    ),
    pytest.param(
        new_pool(gpu="H100-SXM-80GB", maxNodes=2, backend={**GKE, "machineTyp": "a3-highgpu-8g"}),
        SpecError,
        "pools[0].backend.machineTyp",
        ("unknown key", "did you mean 'machineType'?"),
        id="unknown-gke-backend-key",
    ),
    pytest.param(
        backend(kind="eks"),
        SpecError,
        "pools[0].backend.kind",
        ("'eks' is not a backend", "existing, karpenter, gke, ovh"),
        id="unknown-backend-kind",
    ),
    pytest.param(
        backend_without("kind"),
        SpecError,
        "pools[0].backend.kind",
        ("required", "existing, karpenter, gke, ovh"),
        id="missing-backend-kind",
    ),
    pytest.param(
        model_without("model"),
        SpecError,
        "models[0].model",
        ("required; add it",),
        id="missing-model",
    ),
    pytest.param(
        model(name="Qwen-32B"),
        SpecError,
        "models[0].name",
        ("'Qwen-32B' is not a valid name", "lowercase"),
        id="uppercase-name",
    ),
    pytest.param(
        duplicate_model,
        SpecError,
        "models[1].name",
        ("'qwen-32b' is used twice", "unique"),
        id="duplicate-model-name",
    ),
    pytest.param(
        model(pool="h200"),
        SpecError,
        "models[0].pool",
        ("no pool named 'h200'", "pools are: h100"),
        id="model-references-missing-pool",
    ),
    pytest.param(
        model(replicas=2, autoscaling={"maxReplicas": 4}),
        SpecError,
        "models[0].replicas",
        ("either replicas", "or autoscaling", "not both"),
        id="replicas-and-autoscaling",
    ),
    pytest.param(
        model(autoscaling={"minReplicas": 3, "maxReplicas": 2}),
        SpecError,
        "models[0].autoscaling.minReplicas",
        ("3 is greater than maxReplicas 2", "lower minReplicas or raise maxReplicas"),
        id="autoscaling-min-above-max",
    ),
    pytest.param(
        new_pool(gpu="H100-SXM-80GB", minNodes=3, maxNodes=1, backend=GKE),
        SpecError,
        "pools[0].minNodes",
        ("3 is greater than maxNodes 1", "lower minNodes or raise maxNodes"),
        id="pool-min-nodes-above-max",
    ),
    pytest.param(
        new_pool(gpu="H100-SXM-80GB", backend=GKE),
        SpecError,
        "pools[0].maxNodes",
        ("required for a gke pool",),
        id="cloud-pool-without-size",
    ),
    pytest.param(
        pool(nodes=3),
        SpecError,
        "pools[0].nodes",
        ("3 but backend.nodeNames lists 2 node(s)", "remove `nodes`"),
        id="existing-nodes-mismatch",
    ),
    pytest.param(
        pool(minNodes=1),
        SpecError,
        "pools[0].minNodes",
        ("existing nodes do not scale", "backend.nodeNames"),
        id="existing-pool-with-min-nodes",
    ),
    pytest.param(
        backend(nodeNames=[]),
        SpecError,
        "pools[0].backend.nodeNames",
        ("must not be empty",),
        id="existing-empty-node-names",
    ),
    pytest.param(
        backend(nodeNames=["gpu-01", "gpu-01"]),
        SpecError,
        "pools[0].backend.nodeNames[1]",
        ("'gpu-01' is used twice",),
        id="existing-duplicate-node-names",
    ),
    pytest.param(
        pool_without("gpusPerNode"),
        SpecError,
        "pools[0].gpusPerNode",
        ("required for existing nodes",),
        id="existing-without-gpus-per-node",
    ),
    pytest.param(
        pool(nvlinkDomain=3),
        SpecError,
        "pools[0].nvlinkDomain",
        ("3 does not divide gpusPerNode 8",),
        id="nvlink-domain-not-a-divisor",
    ),
    pytest.param(
        model(deterministic=True, prefixCaching=True),
        SpecError,
        "models[0].prefixCaching",
        ("deterministic", "remove prefixCaching or set deterministic: false"),
        id="deterministic-with-prefix-caching",
    ),
    pytest.param(
        top(gateway={"fallbacks": {"qwen-32b": ["llama-70b"]}}),
        SpecError,
        "gateway.fallbacks.qwen-32b",
        ("'llama-70b' is not a served model", "served models are: qwen-32b"),
        id="fallback-to-unknown-model",
    ),
    pytest.param(
        top(auth={"clients": [{"name": "team-a"}]}),
        SpecError,
        "auth.tlsSecretName",
        ("name the TLS Secret", "allowPlainHttp: true"),
        id="clients-without-tls",
    ),
    pytest.param(
        top(monitoring={"prometheus": {"size": "50GB"}}),
        SpecError,
        "monitoring.prometheus.size",
        ("'50GB' is not a storage size", "50Gi"),
        id="storage-size-in-gb",
    ),
    pytest.param(
        top(monitoring={"retention": "15 days"}),
        SpecError,
        "monitoring.retention",
        ("not a duration", "15d"),
        id="retention-not-a-duration",
    ),
    pytest.param(
        model(maxModelLen=-1),
        SpecError,
        "models[0].maxModelLen",
        ("-1 is out of range", ">= 16"),
        id="negative-max-model-len",
    ),
    pytest.param(
        model(replicas="two"),
        SpecError,
        "models[0].replicas",
        ("must be a whole number",),
        id="replicas-not-a-number",
    ),
    pytest.param(
        model(quantization="int4"),
        SpecError,
        "models[0].quantization",
        ("'int4' is not allowed", "'fp8'", "'awq'"),
        id="unknown-quantization",
    ),
    pytest.param(
        model(env={"1BAD": "x"}),
        SpecError,
        "models[0].env.1BAD",
        ("not a valid environment variable name",),
        id="bad-env-name",
    ),
    pytest.param(
        model(model=""),
        SpecError,
        "models[0].model",
        ("must not be empty",),
        id="empty-model-id",
    ),
    pytest.param(
        backend(nodeNames=[""]),
        SpecError,
        "pools[0].backend.nodeNames[0]",
        ("must not be empty",),
        id="empty-node-name",
    ),
    # ---- catalog facts (SizingError)
    pytest.param(
        pool(gpu="H100-80GB"),
        SizingError,
        "pools[0].gpu",
        ("unknown GPU 'H100-80GB'", "known GPUs:", "H100-SXM-80GB", "RTX-4090-24GB"),
        id="unknown-gpu",
    ),
    pytest.param(
        new_pool(gpu="RTX-4090-24GB", maxNodes=2, backend=GKE),
        SizingError,
        "pools[0].gpu",
        ("RTX-4090-24GB is not offered on gke", "GPUs it offers:", "L4-24GB"),
        id="gpu-not-offered-on-backend",
    ),
    pytest.param(
        new_pool(gpu="H100-SXM-80GB", maxNodes=2, backend={**GKE, "machineType": "a3-highgpu-4g"}),
        SizingError,
        "pools[0].backend",
        ("'a3-highgpu-4g' is not offered on gcp with H100-SXM-80GB", "a3-highgpu-8g"),
        id="unknown-machine-type",
    ),
    pytest.param(
        new_pool(gpu="H100-SXM-80GB", gpusPerNode=4, maxNodes=2, backend=GKE),
        SizingError,
        "pools[0].gpusPerNode",
        ("no gcp shape has 4 x H100-SXM-80GB", "use 8"),
        id="gpus-per-node-no-cloud-shape",
    ),
    pytest.param(
        model(model="acme/secret-llm"),
        SizingError,
        "models[0].model",
        ("'acme/secret-llm' is not in the model catalog", "configPath"),
        id="model-not-in-catalog",
    ),
    pytest.param(
        model(model="acme/secret-llm", configPath="configs/missing/config.json"),
        SizingError,
        "models[0].configPath",
        ("no such file", "config.json"),
        id="config-path-missing",
    ),
    pytest.param(
        model(tensorParallel=3),
        SizingError,
        "models[0].tensorParallel",
        ("3 does not divide 40 attention heads of Qwen/Qwen2.5-32B-Instruct; use 1, 2, 4 or 8",),
        id="tp-does-not-divide-heads",
    ),
    pytest.param(
        chain(pool(gpusPerNode=4), model(tensorParallel=8)),
        SizingError,
        "models[0].tensorParallel",
        ("8 is more than the 4 GPUs of one node", "use at most 4", "pipelineParallel"),
        id="tp-larger-than-node",
    ),
    pytest.param(
        model(tensorParallel=2, pipelineParallel=3),
        SizingError,
        "models[0].pipelineParallel",
        ("TP 2 x PP 3 = 6 GPUs", "8-GPU nodes"),
        id="tp-times-pp-does-not-tile-nodes",
    ),
    pytest.param(
        model(maxModelLen=65536),
        SizingError,
        "models[0].maxModelLen",
        ("65536 exceeds the 32768 positions", "was trained on; lower it to 32768", "ropeScaling: {factor: 2}"),
        id="context-beyond-native-without-yarn",
    ),
    pytest.param(
        model(maxModelLen=262144, ropeScaling={"factor": 4}),
        SizingError,
        "models[0].maxModelLen",
        ("262144 exceeds 32768 x YaRN factor 4 = 131072", "raise ropeScaling.factor to 8"),
        id="context-beyond-yarn",
    ),
    pytest.param(
        model(extraArgs=["--tensor-parallel-size", "2"]),
        SizingError,
        "models[0].extraArgs",
        ("--tensor-parallel-size", "set tensorParallel instead"),
        id="extra-args-tensor-parallel",
    ),
    pytest.param(
        model(extraArgs=["--max-model-len=8192"]),
        SizingError,
        "models[0].extraArgs",
        ("--max-model-len", "set maxModelLen instead"),
        id="extra-args-max-model-len",
    ),
    pytest.param(
        model(extraArgs=["--port", "9000"]),
        SizingError,
        "models[0].extraArgs",
        ("--port is set by the plan", "remove it (the serving component sets it)"),
        id="extra-args-port",
    ),
    pytest.param(
        model(extraArgs=["--max-num-seqs", "64"]),
        SizingError,
        "models[0].extraArgs",
        ("--max-num-seqs contradicts the plan", "set maxNumSeqs instead"),
        id="extra-args-max-num-seqs",
    ),
    pytest.param(
        model(env={"NCCL_P2P_DISABLE": "0"}),
        SizingError,
        "models[0].env.NCCL_P2P_DISABLE",
        ("set by the plan", "remove it"),
        id="env-nccl-p2p-disable",
    ),
    pytest.param(
        model(quantization="awq"),
        SizingError,
        "models[0].quantization",
        ("cannot turn the bf16 checkpoint", "into awq", "pre-quantized AWQ checkpoint"),
        id="awq-on-bf16-checkpoint",
    ),
    pytest.param(
        model(model="deepseek-ai/DeepSeek-R1", maxModelLen=None, quantization="bf16"),
        SizingError,
        "models[0].quantization",
        ("is a fp8 checkpoint", "`auto`"),
        id="bf16-on-fp8-checkpoint",
    ),
    pytest.param(
        model(task="score"),
        SizingError,
        "models[0].task",
        ("(Qwen2ForCausalLM) has no classifier head", "set task: generate or embed"),
        id="score-task-on-generate-model",
    ),
    pytest.param(
        model(model="BAAI/bge-m3", task="embed", maxModelLen=None, pipelineParallel=2),
        SizingError,
        "models[0].pipelineParallel",
        ("no pipeline parallelism for encoder models",),
        id="pipeline-parallel-on-encoder",
    ),
    pytest.param(
        chain(
            new_pool(gpu="L4-24GB", gpusPerNode=8, backend={"kind": "existing", "nodeNames": ["l4-01"]}),
            model(name="r1", model="deepseek-ai/DeepSeek-R1", maxModelLen=None),
        ),
        SizingError,
        "models[0] (r1) on pool 'h100'",
        ("deepseek-ai/DeepSeek-R1 does not fit 8 x L4-24GB",),
        id="model-fits-no-pool",
    ),
    pytest.param(
        chain(
            new_pool(gpu="L4-24GB", gpusPerNode=1, backend={"kind": "existing", "nodeNames": ["l4-01"]}),
            model(name="llama-8b", model="meta-llama/Llama-3.1-8B-Instruct", maxModelLen=None),
        ),
        SizingError,
        "models[0] (llama-8b) on pool 'h100'",
        ("does not fit 1 x L4-24GB", "would fit with", "maxModelLen <="),
        id="model-too-big-suggests-fix",
    ),
    pytest.param(
        chain(new_pool(gpu="H100-SXM-80GB", maxNodes=2, backend=GKE), model(replicas=20)),
        SizingError,
        "pools[0].maxNodes",
        ("models[0] (qwen-32b)", "do not fit 2 node(s)", "need 3 nodes"),
        id="replicas-exceed-cloud-pool",
    ),
    pytest.param(
        model(replicas=20),
        SizingError,
        # The fix for existing nodes is to name more of them; `nodes` must equal the named count.
        "pools[0].backend.nodeNames",
        ("models[0] (qwen-32b)", "need 3 nodes"),
        id="replicas-exceed-existing-pool",
    ),
]


def test_base_config_is_valid() -> None:
    result = plan(base())
    assert [m.name for m in result.models] == ["qwen-32b"]


@pytest.mark.parametrize(("mutate", "stage", "path", "phrases"), CASES)
def test_bad_config_names_field_and_fix(
    mutate: Mutator, stage: type[SpecError], path: str, phrases: tuple[str, ...]
) -> None:
    error = problems(broken(mutate))
    assert type(error) is stage, f"caught by {type(error).__name__}, expected {stage.__name__}: {error.errors}"
    assert len(error.errors) == 1, error.errors
    line = error.errors[0]
    assert line.startswith(f"{path}: "), line
    for phrase in phrases:
        assert phrase in line, f"{phrase!r} not in {line!r}"
    assert not any(p in line for p in PYDANTIC_PHRASES), line
    # pydantic puts the union's tag in the location; the stack file has no such key.
    assert not any(f".{kind}." in line.split(": ", 1)[0] for kind in ("existing", "karpenter", "gke", "ovh"))


def test_enough_cases() -> None:
    assert len(CASES) >= 20


def test_tp_message_exact() -> None:
    error = problems(broken(model(tensorParallel=3)))
    assert error.errors[0].startswith(
        "models[0].tensorParallel: 3 does not divide 40 attention heads of Qwen/Qwen2.5-32B-Instruct; use 1, 2, 4 or 8"
    )


def test_unknown_backend_key_path_has_no_union_tag() -> None:
    error = problems(broken(backend(nodeName=["gpu-03"])))
    assert error.errors == [
        "pools[0].backend.nodeName: unknown key; did you mean 'nodeNames'? allowed keys: kind, nodeNames"
    ]


# ---------------------------------------------------------------- several problems at once


def test_shape_problems_are_all_reported() -> None:
    error = problems(broken(top(modles=[]), model(name="Bad", maxModelLen=-5), pool(gpusPerNode=0)))
    assert type(error) is SpecError
    assert len(error.errors) >= 3, error.errors
    paths = {line.split(": ", 1)[0] for line in error.errors}
    assert {"modles", "models[0].name", "models[0].maxModelLen", "pools[0].gpusPerNode"} <= paths


def test_cross_field_problems_are_all_reported() -> None:
    error = problems(
        broken(
            duplicate_model,
            model(pool="h200"),
            model(deterministic=True, prefixCaching=True),
            top(auth={"clients": [{"name": "team-a"}]}),
        )
    )
    assert type(error) is SpecError
    assert len(error.errors) >= 3, error.errors
    paths = {line.split(": ", 1)[0] for line in error.errors}
    assert {"models[1].name", "models[0].pool", "models[0].prefixCaching", "auth.tlsSecretName"} <= paths


def test_sizing_problems_are_all_reported() -> None:
    cfg = broken(
        model(tensorParallel=3),
        add_model(name="secret", model="acme/secret-llm", pool="h100"),
        lambda cfg: cfg["pools"].append(
            {
                "name": "other",
                "gpu": "H999",
                "gpusPerNode": 8,
                "backend": {"kind": "existing", "nodeNames": ["x-01"]},
            }
        ),
    )
    error = problems(cfg)
    assert type(error) is SizingError
    assert len(error.errors) >= 3, error.errors
    paths = {line.split(": ", 1)[0] for line in error.errors}
    assert {"pools[1].gpu", "models[0].tensorParallel", "models[1].model"} <= paths


# ---------------------------------------------------------------- never pydantic's words

WORDING_CASES = [
    pytest.param(top(modles=[]), id="extra-key"),
    pytest.param(model_without("model"), id="missing"),
    pytest.param(model(maxModelLen=4096.5), id="fractional-int"),
    pytest.param(model(maxModelLen="long"), id="string-for-int"),
    pytest.param(model(gpuMemoryUtilization="high"), id="string-for-float"),
    pytest.param(model(deterministic="maybe"), id="string-for-bool"),
    pytest.param(model(extraArgs="--foo"), id="string-for-list"),
    pytest.param(model(env=["A=1"]), id="list-for-mapping"),
    pytest.param(model(autoscaling=3), id="int-for-model"),
    pytest.param(pool(backend="existing"), id="string-for-backend"),
    pytest.param(top(pools={}), id="mapping-for-list"),
    pytest.param(top(models=None), id="null-for-list"),
    pytest.param(top(kubernetesVersion=1.31), id="float-for-version"),
    pytest.param(top(kubernetesVersion="v1.31"), id="bad-version"),
    pytest.param(model(autoscaling={"maxReplicas": 2, "metric": "gpu"}), id="literal"),
    pytest.param(model(ropeScaling={"factor": 100}), id="above-max"),
    pytest.param(
        top(auth={"allowPlainHttp": True, "clients": [{"name": "a", "rateLimit": {"request": 3}}]}), id="nested"
    ),
]


@pytest.mark.parametrize("mutate", WORDING_CASES)
def test_errors_never_use_pydantic_wording(mutate: Mutator) -> None:
    error = problems(broken(mutate))
    assert error.errors
    for line in error.errors:
        assert not any(p in line for p in PYDANTIC_PHRASES), line
        path, sep, message = line.partition(": ")
        assert sep and path and message, line
        assert " " not in path, line


def test_not_a_mapping() -> None:
    error = problems([1, 2])
    assert error.errors == [
        "llm-cluster:cluster: expected a mapping with pools and models, got list; indent its keys (pools:, models:, "
        "...) under `llm-cluster:cluster:`"
    ]


# ---------------------------------------------------------------- stacks and round trip


def test_stacks_exist() -> None:
    assert {p.name for p in STACKS} >= {"Pulumi.dev.yaml", "Pulumi.staging.yaml", "Pulumi.prod.yaml"}


@pytest.mark.parametrize("stack", STACKS, ids=lambda p: p.name)
def test_stack_loads_and_plans(stack: Path) -> None:
    raw = yaml.safe_load(stack.read_text())["config"]["llm-cluster:cluster"]
    result = plan(raw)
    assert [m.name for m in result.models] == [m["name"] for m in raw["models"]]
    assert [p.name for p in result.pools] == [p["name"] for p in raw["pools"]]


def test_camel_case_keys_become_snake_case_attributes() -> None:
    cfg = broken(
        model(
            maxModelLen=16384,
            kvCacheDtype="fp8",
            ropeScaling={"factor": 2},
            autoscaling={"minReplicas": 1, "maxReplicas": 3, "scaleDownStabilizationSeconds": 300},
            gpuMemoryUtilization=0.85,
            maxNumSeqs=64,
            maxNumBatchedTokens=4096,
            extraArgs=["--enable-chunked-prefill"],
        ),
        top(
            kubernetesVersion="1.30",
            storageClass="fast",
            auth={"tlsSecretName": "tls", "clients": [{"name": "a", "rateLimit": {"requests": 10}}]},
            monitoring={"scrapeInterval": "15s", "alertmanagerConfigSecret": "am"},
        ),
    )
    spec = load_cluster_spec(cfg)
    assert isinstance(spec, ClusterSpec)
    assert spec.kubernetes_version == "1.30"
    assert spec.storage_class == "fast"
    pool_spec = spec.pools[0]
    assert pool_spec.gpus_per_node == 8
    assert isinstance(pool_spec.backend, ExistingBackendSpec)
    assert pool_spec.backend.node_names == ["gpu-01", "gpu-02"]
    m = spec.models[0]
    assert m.max_model_len == 16384
    assert m.kv_cache_dtype == "fp8"
    assert m.rope_scaling is not None and m.rope_scaling.factor == 2
    assert m.autoscaling is not None and m.autoscaling.scale_down_stabilization_seconds == 300
    assert (m.min_replicas, m.max_replicas) == (1, 3)
    assert m.gpu_memory_utilization == 0.85
    assert (m.max_num_seqs, m.max_num_batched_tokens) == (64, 4096)
    assert m.extra_args == ["--enable-chunked-prefill"]
    assert spec.auth.tls_secret_name == "tls"
    assert spec.auth.clients[0].rate_limit is not None and spec.auth.clients[0].rate_limit.requests == 10
    assert spec.monitoring.scrape_interval == "15s"
    assert spec.monitoring.alertmanager_config_secret == "am"
    # Dumped with aliases, the spec reads back the same.
    assert load_cluster_spec(spec.model_dump(by_alias=True)) == spec
    assert load_cluster_spec(spec.model_dump(by_alias=True, exclude_none=True)) == spec


# ---------------------------------------------------------------- serving inputs


def test_missing_storage_class_names_the_field() -> None:
    cfg = base()
    del cfg["storageClass"]
    with pytest.raises(SpecError) as caught:
        load_cluster_spec(cfg)
    assert caught.value.errors == [
        "storageClass: every model caches its weights on a PVC (qwen-32b first); name a storage class here or "
        "in weightsStorageClass (ReadWriteMany when a pool has more than one node)"
    ]


def test_weights_storage_class_alone_is_enough() -> None:
    cfg = base()
    del cfg["storageClass"]
    cfg["weightsStorageClass"] = "cephfs"
    assert plan(cfg).weights_storage_class == "cephfs"


def test_model_on_a_pool_whose_gpus_cannot_hold_it() -> None:
    cfg = base()
    cfg["pools"][0] = {
        "name": "h100",
        "gpu": "RTX-4090-24GB",
        "gpusPerNode": 1,
        "backend": {"kind": "existing", "nodeNames": ["ws-01"]},
    }
    with pytest.raises(SizingError) as caught:
        plan(cfg)
    (line,) = caught.value.errors
    assert line.startswith(
        "models[0] (qwen-32b) on pool 'h100': Qwen/Qwen2.5-32B-Instruct does not fit 1 x RTX-4090-24GB"
    )
    assert "would fit with" in line


def test_weights_cache_mode_is_checked() -> None:
    cfg = base()
    cfg["weightsCache"] = "nfs"
    with pytest.raises(SpecError) as caught:
        load_cluster_spec(cfg)
    assert caught.value.errors[0].startswith("weightsCache: 'nfs' is not allowed; use one of 'shared' or 'per-pod'")
