defmodule MixExample.Application do
  @moduledoc false
  use Application

  @impl true
  def start(_type, _args) do
    children = [
      # The worker loads the model before the search below starts, so the
      # search can embed its corpus in init.
      {PyBridge.Serving,
       serving: MixExample.Embeddings.serving(),
       name: MixExample.Embeddings.name(),
       batch_size: 16,
       batch_timeout: 20},
      MixExample.Search
    ]

    Supervisor.start_link(children, strategy: :one_for_one, name: MixExample.Supervisor)
  end
end
