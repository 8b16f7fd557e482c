defmodule PyBridge.Text.CrossEncoding do
  @moduledoc false

  alias PyBridge.Shared

  def serving(model_info, %PyBridge.Tokenizer{}, opts) do
    Shared.require_architecture!(model_info, [:for_sequence_classification])

    opts = Shared.validate_options!(opts, [:compile, defn_options: [], preallocate_params: false])
    compile = Shared.compile!(opts[:compile], [:batch_size, :sequence_length])

    Shared.serving(
      model_info,
      :cross_encoding,
      %{sequence_length: Shared.sequence_length(compile)},
      compile,
      &validate/1
    )
  end

  defp validate({first, second} = pair) when is_binary(first) and is_binary(second) do
    if String.valid?(first) and String.valid?(second),
      do: {:ok, pair},
      else: {:error, "expected a pair of valid UTF-8 strings, got: #{inspect(pair, limit: 20)}"}
  end

  defp validate(other),
    do: {:error, "expected a {string, string} pair, got: #{inspect(other, limit: 20)}"}
end
