defmodule PyBridge.Optional do
  @moduledoc false
  # Whether the host application has an optional library (Nx, :telemetry).
  #
  # `Code.ensure_loaded?/1` searches the whole code path through the code
  # server when a module is missing, which costs about a millisecond; the
  # answer is cached here so the per-request path never pays it twice.

  @spec available?(module()) :: boolean()
  def available?(module) do
    key = {__MODULE__, module}

    case :persistent_term.get(key, nil) do
      nil ->
        available? = Code.ensure_loaded?(module)
        :persistent_term.put(key, available?)
        available?

      available? ->
        available?
    end
  end
end
