"""(App polish shipped with the decoding work.) The train panel says what the run is doing
while the evaluation before step 1 and the periodic evaluations run, from the records that
already flow to it."""
from workbench.config import TrainConfig
from workbench.runs.records import Event, Kind, MetricsRecord


def _feed(cfg):
    from widgets.train_panel import TrainPanel

    panel = TrainPanel(lambda: cfg, live=False)
    panel._prepare()
    seen = []

    def rec(r):
        panel.on_record(r)
        seen.append(panel.status.value)
    rec(MetricsRecord(0, Kind.EVENT, {"event": Event.START, "max_steps": 20, "trainable_params": 1234}))
    rec(MetricsRecord(0, Kind.EVAL, {"eval_loss": 0.69}))
    rec(MetricsRecord(1, Kind.TRAIN, {"loss": 0.7}))
    rec(MetricsRecord(10, Kind.TRAIN, {"loss": 0.6}))
    rec(MetricsRecord(10, Kind.EVAL, {"eval_loss": 0.6}))
    return seen, panel.progress.label.value


def test_status_names_the_evaluation_before_step_1_and_periodic_evals():
    seen, _ = _feed(TrainConfig(model="tiny-llama", dataset="preferences", method="dpo", eval_steps=10))
    assert seen[0].startswith("evaluating before step 1 …") and "1,234 trainable" in seen[0]
    assert seen[1].startswith("evaluated before step 1 (eval loss 0.6900); starting training")
    assert seen[2].startswith("training") and seen[3].startswith("evaluating at step 10")
    assert seen[4].startswith("training")


def test_no_evaluation_first_means_plain_training_status():
    seen, label = _feed(TrainConfig(model="tiny-llama", method="dpo", dataset="preferences",
                                    method_args={"eval_on_start": False}))
    assert seen[0].startswith("training")
    seen, _ = _feed(TrainConfig(model="tiny-llama", method="sft", eval_rows=0))
    assert seen[0].startswith("training") and seen[3].startswith("training")
