defmodule PyBridge.Serving.Stream do
  @moduledoc false
  # The Elixir Stream a streaming serving returns. Chunks arrive as messages
  # for the caller's request; halting the stream early (Enum.take/2, a
  # raise) or passing the caller's :timeout cancels the generation in the
  # worker.

  alias PyBridge.Error

  @spec new(pid(), reference(), map(), mfa(), integer() | :infinity) :: Enumerable.t()
  def new(server, ref, streaming, mfa, deadline \\ :infinity) do
    owner = self()

    Stream.resource(
      fn ->
        if self() != owner do
          raise ArgumentError,
                "the stream returned by a PyBridge serving must be consumed in the process that called it"
        end

        :running
      end,
      &next(&1, server, ref, streaming, mfa, deadline),
      fn
        :done ->
          :ok

        :running ->
          send(server, {:cancel, ref})
          PyBridge.Serving.release(ref)
      end
    )
  end

  defp next(:done, _server, _ref, _streaming, _mfa, _deadline), do: {:halt, :done}

  defp next(:running, server, ref, streaming, mfa, deadline) do
    receive do
      {^ref, {:chunk, _index, value}} ->
        {streaming.chunk.(value), :running}

      {^ref, {:items, [{_index, {:ok, final}}]}} ->
        Process.demonitor(ref, [:flush])
        {if(streaming.done, do: [streaming.final.(final)], else: []), :done}

      {^ref, {:items, [{_index, {:error, error}}]}} ->
        Process.demonitor(ref, [:flush])
        raise Error.from_wire(error)

      {^ref, {:failed, %Error{type: :overloaded} = error}} ->
        Process.demonitor(ref, [:flush])
        raise error

      {^ref, {:failed, error}} ->
        Process.demonitor(ref, [:flush])
        exit({error, mfa})

      {:DOWN, ^ref, _, _, reason} ->
        exit({reason, mfa})
    after
      remaining(deadline) ->
        send(server, {:cancel, ref})
        PyBridge.Serving.release(ref)
        exit({:timeout, mfa})
    end
  end

  defp remaining(:infinity), do: :infinity
  defp remaining(deadline), do: max(deadline - System.monotonic_time(:millisecond), 0)
end
