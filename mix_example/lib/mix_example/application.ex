defmodule MixExample.Application do
  @moduledoc false
  use Application

  @impl true
  def start(_type, _args) do
    children = [
      # The serving (its implementation is configured in config.exs) loads the
      # model before the search below starts, so the search can embed its
      # corpus in init.
      MixExample.Embeddings,
      MixExample.Search
    ]

    Supervisor.start_link(children, strategy: :one_for_one, name: MixExample.Supervisor)
  end
end
