defmodule PyBridge.Serving.Distributed do
  @moduledoc false
  # Servings across BEAM nodes, through Erlang's own :pg process groups, as
  # Nx.Serving does: every serving process joins the group of its name in the
  # PyBridge.PG scope, and a caller with no local serving of that name picks a
  # member at random and runs the request on the member's node.

  @scope PyBridge.PG

  @doc false
  def scope, do: @scope

  @doc false
  def join(name, pid), do: :pg.join(@scope, name, pid)

  @doc false
  def batched_run(name, input, opts) do
    case :pg.get_members(@scope, name) do
      [] ->
        exit({:noproc, {PyBridge.Serving, :distributed_batched_run, [name, input]}})

      members ->
        pid = Enum.random(members)
        {preprocess, opts} = Keyword.pop(opts, :distributed_preprocessing)
        input = if preprocess, do: preprocess.(input), else: input
        remote_run(pid, name, input, opts)
    end
  end

  defp remote_run(pid, name, input, opts) do
    :erpc.call(
      node(pid),
      PyBridge.Serving,
      :local_batched_run,
      [pid, name, input, opts],
      :infinity
    )
  rescue
    # erpc wraps the remote exception; raise the original one here.
    error in ErlangError ->
      case error.original do
        {:exception, reason, stacktrace} ->
          reraise Exception.normalize(:error, reason, stacktrace), stacktrace

        _ ->
          reraise error, __STACKTRACE__
      end
  catch
    :exit, {:exception, reason} -> exit(reason)
  end
end
