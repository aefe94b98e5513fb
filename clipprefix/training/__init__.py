"""Training captioners on feature caches (`trainer.train`, `clipprefix train`).

Run folder (`out`):
    train_config.json        the TrainConfig
    checkpoints/epoch-003/   a checkpoint folder (Captioner.from_pretrained) + trainer_state.json and
                             trainer_state.safetensors (optimizer, RNG: no pickle); also step-000450/
                             mid-epoch when save_every_steps is set; the newest `keep_checkpoints` kept
    best/                    the checkpoint with the lowest validation loss
    last -> checkpoints/...  the newest state (also named in last.json); `resume=True` goes on from it
    history.json             one record per epoch (losses, lr, samples/s, generated samples)
    tb/                      TensorBoard events; W&B only with `wandb="project"`

Every folder is written to a temporary name and renamed, so a kill at any moment leaves whole
checkpoints only, and a resumed run ends with the same weights as an uninterrupted one.
"""
