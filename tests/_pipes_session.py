"""`python -m tests._pipes_session DATA_ROOT SPEC`: run pipeline.dynamics_pipes in a real Pipes session from an
asset, as the `dynamics` asset does (the project's client: session files under the data root), in an ephemeral
instance. Prints the reported data version, or the error the step failed with."""

import sys

from dagster import AssetExecutionContext, DagsterInstance, PipesSubprocessClient, asset, materialize

from pipeline.resources import PROJECT_ROOT, DataRootContextInjector, DataRootMessageReader


def main(root: str, spec: str) -> None:
    client = PipesSubprocessClient(
        cwd=str(PROJECT_ROOT),
        context_injector=DataRootContextInjector(root),
        message_reader=DataRootMessageReader(root),
    )

    @asset
    def dynamics(context: AssetExecutionContext):
        command = [sys.executable, "-m", "pipeline.dynamics_pipes", "--spec", spec]
        return client.run(context=context, command=command).get_materialize_result()

    instance = DagsterInstance.ephemeral()
    result = materialize([dynamics], instance=instance, raise_on_error=False)
    if result.success:
        print(f"data_version {result.asset_materializations_for_node('dynamics')[0].tags['dagster/data_version']}")
        return
    # What the run's log shows for the step: the process's exit, and the error the external process reported.
    for entry in instance.all_logs(result.run_id):
        error = getattr(entry.dagster_event and entry.dagster_event.event_specific_data, "error", None)
        if error is not None and entry.dagster_event.event_type_value in ("STEP_FAILURE", "ENGINE_EVENT"):
            print(f"FAILED: {entry.dagster_event.message}: {error.message.strip()}")


if __name__ == "__main__":
    main(*sys.argv[1:])
