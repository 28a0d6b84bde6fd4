"""The plan: spec -> ClusterPlan, the only place decisions are made. Pure data, no Pulumi.

Split by concern: `vllm` (what depends on the engine version), `types`, `memory` (the memory model),
`parallelism` (TP x PP), `engine_args` (vLLM arguments and environment), `sizing` (one model on one GPU
shape), `pools` (pool shapes and placement), `defaults` (HPA and gateway defaults), `cluster` (plan_cluster).
"""
