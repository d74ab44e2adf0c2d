# Training: every trained method (uvac, cat_uvac, linear_vae variants) × K × seed the tables name.


rule pretext:
    """The contrastive encoder's embedding of a dataset's training clips: made once per pretext_epochs,
    pretext_batch_size and seed, and read by every method of that seed whose neighbours or cluster
    initialisation use it."""
    input:
        "data/features/{dataset}",
    output:
        PRETEXT,
    params:
        train={key: config["train"][key] for key in ("device", "threads")},  # what the embedding depends on
    log:
        "logs/pretext/{dataset}/e{epochs}_b{batch_size}_seed{seed}.log",
    benchmark:
        "logs/benchmarks/pretext/{dataset}/e{epochs}_b{batch_size}_seed{seed}.tsv"
    wildcard_constraints:
        epochs=r"\d+",
        batch_size=r"\d+",
        seed=r"\d+",
    threads: config["train"]["threads"]
    resources:
        mem_mb=6000,
        gpu=config["train"]["gpus"],
        runtime=4 * 60,
    script:
        "../scripts/pretext.py"


rule train:
    input:
        unpack(train_inputs),
    output:
        model=f"{RUN_DIR}/model.pt",
        history=f"{RUN_DIR}/history.csv",
        embeddings=f"{RUN_DIR}/embeddings.npz",
        metrics=f"{RUN_DIR}/metrics.json",
    params:
        method=lambda w: METHODS[w.method],
        train=config["train"],
    log:
        "logs/train/{dataset}/{method}/k{k}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/train/{dataset}/{method}/k{k}/seed{seed}.tsv"
    wildcard_constraints:
        method=one_of(VAE_METHODS),
        k=r"\d+",
        seed=r"\d+",
    threads: config["train"]["threads"]
    resources:
        mem_mb=6000,
        gpu=config["train"]["gpus"],
        runtime=24 * 60,
    script:
        "../scripts/train.py"


rule runs:
    """Target: every run (trained or baseline) of the tables and figures, fitted and scored."""
    input:
        [run_path(run, "scores.json") for run in all_runs()],
