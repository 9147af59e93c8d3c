declare module 'ari-client' {
  const ari: { connect(url: string, user: string, password: string): Promise<any> };
  export default ari;
}
