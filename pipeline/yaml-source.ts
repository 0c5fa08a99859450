// placeholder: replaced by the loader work (keeps arch.ts compiling)
export async function loadYamlDocument(_abs: string, _display: string, _schema: object): Promise<unknown> {
  throw new Error('not yet');
}
