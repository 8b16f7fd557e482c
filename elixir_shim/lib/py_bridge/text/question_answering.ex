defmodule PyBridge.Text.QuestionAnswering do
  @moduledoc false

  alias PyBridge.Shared

  def serving(model_info, %PyBridge.Tokenizer{}, opts) do
    Shared.require_architecture!(model_info, [:for_question_answering])

    opts = Shared.validate_options!(opts, [:compile, defn_options: [], preallocate_params: false])
    compile = Shared.compile!(opts[:compile], [:batch_size, :sequence_length])

    Shared.serving(
      model_info,
      :question_answering,
      %{
        sequence_length: Shared.sequence_length(compile)
      },
      compile,
      &validate/1
    )
  end

  defp validate(%{question: question, context: context} = input)
       when is_binary(question) and is_binary(context) do
    if String.valid?(question) and String.valid?(context),
      do: {:ok, %{question: question, context: context}},
      else:
        {:error,
         "expected :question and :context to be valid UTF-8 strings, got: #{inspect(input, limit: 20)}"}
  end

  defp validate(other),
    do:
      {:error,
       "expected input map with :question and :context keys, got: #{inspect(other, limit: 20)}"}
end
