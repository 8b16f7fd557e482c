defmodule PyBridge.Application do
  @moduledoc false
  use Application

  @impl true
  def start(_type, _args) do
    # Loaded up front so that decoding a tensor from a worker with [:safe]
    # finds the struct's atom.
    Code.ensure_loaded!(PyBridge.Tensor)

    children = [
      %{id: PyBridge.PG, start: {:pg, :start_link, [PyBridge.Serving.Distributed.scope()]}},
      {DynamicSupervisor, name: PyBridge.InlineSupervisor, strategy: :one_for_one},
      PyBridge.Serving.Inline
    ]

    Supervisor.start_link(children, strategy: :one_for_one, name: PyBridge.Supervisor)
  end
end
