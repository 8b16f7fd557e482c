defmodule PyBridge.Text.TextClassification do
  @moduledoc false

  alias PyBridge.Shared

  def serving(model_info, %PyBridge.Tokenizer{}, opts) do
    Shared.require_architecture!(model_info, [:for_sequence_classification])

    opts =
      Shared.validate_options!(opts, [
        :compile,
        top_k: 5,
        scores_function: :softmax,
        defn_options: [],
        preallocate_params: false
      ])

    compile = Shared.compile!(opts[:compile], [:batch_size, :sequence_length])
    Shared.one_of!(opts[:scores_function], [:softmax, :sigmoid, :none], :scores_function)

    unless is_integer(opts[:top_k]) and opts[:top_k] > 0 do
      raise ArgumentError,
            "expected :top_k to be a positive integer, got: #{inspect(opts[:top_k])}"
    end

    options = %{
      top_k: opts[:top_k],
      scores_function: opts[:scores_function],
      sequence_length: Shared.sequence_length(compile)
    }

    Shared.serving(model_info, :text_classification, options, compile, &validate/1)
  end

  defp validate({text, pair}) do
    with {:ok, text} <- Shared.validate_text(text),
         {:ok, pair} <- Shared.validate_text(pair) do
      {:ok, {text, pair}}
    else
      {:error, _} ->
        {:error,
         "expected a string or a {string, string} tuple, got: #{inspect({text, pair}, limit: 20)}"}
    end
  end

  defp validate(text) when is_binary(text), do: Shared.validate_text(text)

  defp validate(other),
    do:
      {:error, "expected a string or a {string, string} tuple, got: #{inspect(other, limit: 20)}"}
end
