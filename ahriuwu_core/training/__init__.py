"""What the tokenizer and dynamics trainers share.

Modules: `optim` (AdamW, the learning-rate schedule, the weight average), `loss_norm` (loss terms scaled by their
running RMS), `progress` (log lines, JSON lines, TensorBoard scalars), `precision` (bf16 autocast on CUDA),
`checkpoint` (exact resume), `run_control` (graceful stop, exit with the parent, one trainer per folder), `devices`
(which GPU a step leases). A trainer's loop::

    opt = make_optimizer(model, cfg.optim)
    sched = make_scheduler(opt, cfg.optim, total_steps)
    start = 0
    if last.exists():
        start = load_checkpoint(last, model=model, optimizer=opt, scheduler=sched)["step"]
    progress = Progress(total_steps, log=log, jsonl_path=out / "train_log.jsonl", start_step=start)
    with StopRequested() as stop:
        for step in range(start + 1, total_steps + 1):
            ...one optimizer step...
            progress.update(step, loss=loss)
            boundary = step % ckpt_every == 0 or step == total_steps
            if boundary or stop.should_stop(at_boundary=boundary):
                save_checkpoint(last, model=model, optimizer=opt, scheduler=sched, step=step, ...)
            if stop.should_stop(at_boundary=boundary):
                break
"""
